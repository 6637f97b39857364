// Reconnect time after a relay SIGKILL: from the restarted relay's
// "relay listening" log line to the client's 'connected' event.
//
//   node bench/reconnect.mjs [ROUNDS] [DOWNTIME_MS]     (defaults 10, 0)
//
// Each round: SIGKILL the relay under a connected client, wait DOWNTIME_MS
// (the time a supervisor takes to restart it), start it again on the same
// port and data dir, and time the client's way back. With a longer downtime
// the client's backoff has grown (full jitter, ceiling doubling from 250 ms
// to 10 s), so it comes back later after the relay does.
import { setTimeout as sleep } from 'node:timers/promises';

import { WebhookRelay } from '@powerlobster/webhook';

import { TestRelay, next } from '../test/support/relay.mjs';

const rounds = Number(process.argv[2] ?? 10);
const downtimeMs = Number(process.argv[3] ?? 0);
const relay = await TestRelay.start();
try {
  const agent = await relay.createAgent('bench-reconnect');
  const times = [];
  for (let round = 0; round < rounds; round++) {
    // A fresh client each round: its backoff starts from the first delay, as
    // for a client whose connection had been up for a while (>= 10 s).
    const sdk = new WebhookRelay({ relayUrl: relay.url, apiKey: agent.api_key, logger: null });
    sdk.on('webhook', () => {});
    await sdk.connect();
    const lost = next(sdk, 'disconnected', 10_000);
    await relay.kill();
    await lost;
    if (downtimeMs > 0) await sleep(downtimeMs); // the supervisor's delay, not a wait for a condition
    const connected = next(sdk, 'connected', 30_000);
    await relay.restart();
    await connected;
    times.push(performance.now() - relay.listeningAt);
    await sdk.close();
  }
  const sorted = [...times].sort((a, b) => a - b);
  const pct = (p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
  console.log(
    `reconnect after SIGKILL (downtime ${downtimeMs} ms, ${rounds} rounds): ` +
      `median ${pct(50).toFixed(0)} ms, max ${sorted.at(-1).toFixed(0)} ms, mean ${(times.reduce((a, b) => a + b, 0) / times.length).toFixed(0)} ms ` +
      `[${times.map((t) => t.toFixed(0)).join(', ')}]`,
  );
} finally {
  await relay.stop();
}
