// The chat bot itself: a stand-in for Clawdbot's message handler. It knows
// nothing about webhooks or relays; it gets a message, returns a reply.
export async function handleMessage({ from = 'someone', text = '' } = {}) {
  const words = String(text).trim().toLowerCase();
  if (words === '/ping') return 'pong';
  if (words === '/help') return 'I answer /ping, /help, and echo anything else.';
  return `Hi ${from}, you said: ${text}`;
}
