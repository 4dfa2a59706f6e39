// The dashboard's Socket.IO connection, typed by the shared event map (server/live/events.ts).
import { io, type Socket } from 'socket.io-client';
import type { ClientToServerEvents, PnlReport, ServerToClientEvents, SubscribeAck, Subscription } from '$shared/events';

export type LiveSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export function connectLive(): LiveSocket {
  // Same origin: the HttpOnly session cookie authenticates the handshake.
  return io({ path: '/socket.io', withCredentials: true, reconnectionDelayMax: 5000 });
}

/** Subscribes; resolves with the ack's report, the snapshot that live `pnl` rows then update. */
export function subscribe(socket: LiveSocket, subscription: Subscription): Promise<PnlReport> {
  return new Promise((resolve, reject) => {
    socket.timeout(5000).emit('subscribe', subscription, (error: Error | null, ack?: SubscribeAck) => {
      if (error) reject(new Error('the live hub did not answer the subscription'));
      else if (!ack?.ok) reject(new Error(ack?.error ?? 'subscription refused'));
      else resolve(ack.report);
    });
  });
}

export function unsubscribe(socket: LiveSocket, subscription: Subscription): void {
  if (socket.connected) socket.emit('unsubscribe', subscription, () => {});
}
