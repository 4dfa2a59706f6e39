// A client-only app: the server serves the static shell, all data comes from /v1 and Socket.IO.
export const ssr = false;
export const prerender = false;
export const trailingSlash = 'never';
