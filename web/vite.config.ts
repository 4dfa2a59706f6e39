// Vite for the dashboard. `npm run dev:web` proxies the API and Socket.IO to the server (API_TARGET).
import { sveltekit } from '@sveltejs/kit/vite';
import { defineConfig } from 'vite';

const target = process.env.API_TARGET ?? 'http://localhost:8080';

export default defineConfig({
  plugins: [sveltekit()],
  server: {
    proxy: {
      '/v1': target,
      '/socket.io': { target, ws: true },
    },
  },
  build: { chunkSizeWarningLimit: 600 },
});
