// The relay dies (SIGKILL) under a connected client and comes back on the
// same port and data dir: the client reconnects by itself and every event
// the relay accepted (202) is handled.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { WebhookRelay } from '@powerlobster/webhook';

import { TestRelay, next, until, within } from './support/relay.mjs';

/** Each test gives up after a minute instead of hanging the run. */
const LIMIT = { timeout: 60_000 };

let relay;
before(async () => {
  relay = await TestRelay.start();
});
after(async () => {
  await relay?.stop();
});

for (const transport of ['ws', 'sse', 'poll']) {
  test(`transport '${transport}': relay SIGKILLed and restarted: disconnected, reconnecting, connected, nothing lost`, LIMIT, async (t) => {
    const agent = await relay.createAgent();
    const sdk = new WebhookRelay({ relayUrl: relay.url, apiKey: agent.api_key, logger: null, transport });
    t.after(() => sdk.close());
    const timeline = [];
    for (const name of ['connected', 'disconnected', 'reconnecting']) sdk.on(name, (info) => timeline.push([name, info]));
    const handled = new Map(); // id -> times handled
    sdk.on('webhook', async (event) => {
      handled.set(event.id, (handled.get(event.id) ?? 0) + 1);
      // Slow enough that some events are in flight (and more still queued on
      // the relay) when it dies: 40 events, 10 at a time, 50 ms each.
      if (event.type === 'burst') await new Promise((r) => setTimeout(r, 50));
    });
    await sdk.connect();

    // A burst, accepted just before the kill: some handled and acked, some in
    // flight, some still queued on the relay.
    const before = await Promise.all(Array.from({ length: 40 }, (_, n) => relay.send(agent.webhook_url, { type: 'burst', n })));
    const handledBeforeKill = handled.size;
    const disconnected = next(sdk, 'disconnected', 10_000);
    const reconnecting = next(sdk, 'reconnecting', 10_000);
    await relay.kill();
    const lost = await disconnected;
    assert.equal(lost.willReconnect, true);
    assert.equal(lost.code, 1006);
    const retry = await reconnecting;
    assert.equal(retry.attempt, 1);
    assert.ok(retry.delayMs <= 250, `first retry within 250 ms, got ${retry.delayMs}`);

    const connected = next(sdk, 'connected', 20_000);
    await relay.restart();
    const info = await connected;
    const reconnectMs = performance.now() - relay.listeningAt;
    t.diagnostic(`reconnect after SIGKILL: ${reconnectMs.toFixed(0)} ms from the restarted relay's "relay listening" to 'connected'`);
    assert.equal(info.webhookUrl, agent.webhook_url);
    assert.equal(sdk.state, 'connected');
    assert.equal(info.transport, transport);

    const later = await Promise.all(Array.from({ length: 10 }, (_, n) => relay.send(agent.webhook_url, { type: 'after', n })));
    const accepted = [...before, ...later].map((answer) => answer.id);
    await within(
      30_000,
      'every accepted event handled',
      until(() => accepted.every((id) => handled.has(id)), { ms: 30_000, what: 'every accepted event handled' }),
    );
    assert.equal(accepted.length, 50);
    const names = timeline.map(([name]) => name);
    assert.deepEqual(names.slice(0, 3), ['connected', 'disconnected', 'reconnecting']);
    assert.equal(names.at(-1), 'connected');
    t.diagnostic(`${handledBeforeKill} of 40 handled before the kill`);
    t.diagnostic(`accepted ${accepted.length}, handled ${handled.size} distinct ids, ${[...handled.values()].reduce((a, b) => a + b, 0)} handler calls`);
  });
}

test('relay restarted gracefully (SIGTERM, close 1012): quick reconnect', LIMIT, async (t) => {
  const agent = await relay.createAgent();
  const sdk = new WebhookRelay({ relayUrl: relay.url, apiKey: agent.api_key, logger: null });
  t.after(() => sdk.close());
  const handled = new Set();
  sdk.on('webhook', (event) => {
    handled.add(event.id);
  });
  await sdk.connect();
  const disconnected = next(sdk, 'disconnected', 10_000);
  const reconnecting = next(sdk, 'reconnecting', 10_000);
  relay.child.kill('SIGTERM');
  const lost = await disconnected;
  assert.equal(lost.code, 1012);
  assert.equal(lost.willReconnect, true);
  assert.equal(lost.error?.code, 'relay_restarting');
  assert.ok((await reconnecting).delayMs < 500, 'retries within 500 ms after a 1012');
  await relay.exited;
  const connected = next(sdk, 'connected', 20_000);
  await relay.restart();
  await connected;
  t.diagnostic(`reconnect after SIGTERM restart: ${(performance.now() - relay.listeningAt).toFixed(0)} ms from "relay listening" to 'connected'`);
  const sent = await relay.send(agent.webhook_url, { type: 'after.restart' });
  await until(() => handled.has(sent.id), { what: 'the event after the restart' });
});
