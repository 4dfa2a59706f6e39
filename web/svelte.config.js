// SvelteKit as a static single-page app: the server serves web/build and falls back to index.html.
import adapter from '@sveltejs/adapter-static';

/** @type {import('@sveltejs/kit').Config} */
export default {
  kit: {
    adapter: adapter({ pages: 'build', assets: 'build', fallback: 'index.html', strict: false }),
    // The live protocol's types are defined once, next to the live hub (type-only imports).
    alias: { $shared: '../server/live' },
    // Absolute asset paths: the fallback page is served for deep links such as /signin.
    paths: { relative: false },
  },
};
