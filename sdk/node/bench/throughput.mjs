// How many events per second one SDK process handles with an empty handler.
//
//   node bench/throughput.mjs [N] [SENDERS] [TRANSPORT]   (defaults 5000, 64, ws; or sse, poll)
//   LOBSTER_RELAY_BIN=../../target/release/lobster-relay node bench/throughput.mjs
//
// Starts its own relay (port 0, temp dir), then measures two things:
//   live:    N signed webhooks posted concurrently (SENDERS at a time, from a
//            worker thread) to a connected client; time from the first post
//            to the last event handled.
//   backlog: N webhooks queued while no client is connected; time from
//            connect() to the last event handled (delivery alone, no ingest).
// Needs a build (npm run build). The relay, the senders and the SDK share
// the machine's cores, so the figure is a floor for the SDK alone.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import os from 'node:os';

import { TestRelay, sign } from '../test/support/relay.mjs';

const now = () => performance.timeOrigin + performance.now();

if (!isMainThread) {
  // Sender: posts N webhooks, SENDERS at a time.
  const { url, secret, n, senders, tag } = workerData;
  let next = 0;
  let firstAt = 0;
  const failures = [];
  async function sender() {
    while (next < n) {
      const i = next++;
      const body = JSON.stringify({ type: 'bench.event', n: i });
      const id = `msg_${tag}_${i}`;
      const ts = Math.floor(Date.now() / 1000);
      if (!firstAt) firstAt = now();
      const res = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'webhook-id': id,
          'webhook-timestamp': String(ts),
          'webhook-signature': sign(secret, id, ts, body),
        },
        body,
      });
      await res.arrayBuffer();
      if (res.status !== 202) failures.push(res.status);
    }
  }
  await Promise.all(Array.from({ length: senders }, sender));
  parentPort.postMessage({ firstAt, lastAcceptedAt: now(), failures });
} else {
  const { WebhookRelay } = await import('@powerlobster/webhook');
  const n = Number(process.argv[2] ?? 5000);
  const senders = Number(process.argv[3] ?? 64);
  const transport = process.argv[4] ?? 'ws';
  const post = (relay, agent, tag) =>
    new Promise((resolve, reject) => {
      const worker = new Worker(new URL(import.meta.url), {
        workerData: { url: agent.webhook_url, secret: relay.secret, n, senders, tag },
      });
      worker.once('message', resolve);
      worker.once('error', reject);
    });

  const relay = await TestRelay.start();
  try {
    console.log(`relay ${process.env.LOBSTER_RELAY_BIN ?? '(debug build)'} at ${relay.url}; ${os.cpus().length} cores; node ${process.version}; transport ${transport}`);

    // live
    {
      const agent = await relay.createAgent('bench-live');
      const sdk = new WebhookRelay({ relayUrl: relay.url, apiKey: agent.api_key, logger: null, proxy: false, transport });
      let handled = 0;
      let lastHandledAt = 0;
      let done;
      const allHandled = new Promise((r) => (done = r));
      sdk.on('webhook', () => {
        if (++handled === n) {
          lastHandledAt = now();
          done();
        }
      });
      const info = await sdk.connect();
      const sent = await post(relay, agent, 'live');
      await allHandled;
      await sdk.close();
      const seconds = (lastHandledAt - sent.firstAt) / 1000;
      const ingest = (sent.lastAcceptedAt - sent.firstAt) / 1000;
      console.log(
        `live:    ${n} events posted by ${senders} concurrent senders and handled in ${seconds.toFixed(2)} s = ${Math.round(n / seconds)} events/s ` +
          `(ingest alone: ${Math.round(n / ingest)}/s; max_in_flight ${info.maxInFlight}, maxConcurrency ${sdk.maxConcurrency}; non-202: ${sent.failures.length})`,
      );
    }

    // backlog
    {
      const agent = await relay.createAgent('bench-backlog');
      const sent = await post(relay, agent, 'backlog');
      const sdk = new WebhookRelay({ relayUrl: relay.url, apiKey: agent.api_key, logger: null, proxy: false, transport });
      let handled = 0;
      let lastHandledAt = 0;
      let done;
      const allHandled = new Promise((r) => (done = r));
      sdk.on('webhook', () => {
        if (++handled === n) {
          lastHandledAt = now();
          done();
        }
      });
      const start = now();
      const cpuBefore = process.cpuUsage();
      await sdk.connect();
      await allHandled;
      const cpu = process.cpuUsage(cpuBefore);
      await sdk.close();
      const seconds = (lastHandledAt - start) / 1000;
      const cpuSeconds = (cpu.user + cpu.system) / 1e6;
      console.log(
        `backlog: ${n} queued events delivered and handled in ${seconds.toFixed(2)} s = ${Math.round(n / seconds)} events/s (non-202: ${sent.failures.length})`,
      );
      // The senders' worker has exited by now: this is the SDK's own CPU.
      console.log(
        `         SDK process CPU: ${(cpuSeconds * 1000).toFixed(0)} ms for ${n} events = ${Math.round(n / cpuSeconds)} events per CPU-second`,
      );
    }
  } finally {
    await relay.stop();
  }
}
