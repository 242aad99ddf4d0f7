// Conformance client: the official openai Node SDK's OpenAIRealtimeWS, against Koe.
// It always connects with wss:// (an http:// base URL is rewritten), so Koe serves TLS
// with a development certificate the test trusts (NODE_EXTRA_CA_CERTS).
// Prints one JSON object: what it saw.
// Usage: node openai_node.mjs <base_url> <agent_id> <secret_key> <speech.pcm>
import fs from 'node:fs';
import OpenAI from 'openai';
import { OpenAIRealtimeWS } from 'openai/realtime/ws';

const [baseURL, agentId, secret, speechPath] = process.argv.slice(2);
const speech = fs.readFileSync(speechPath);
const seen = { types: [], errors: [], transcripts: [], statuses: [], notes: [] };
// Every event, in order, read by `until` from where it last stopped: ws may deliver
// several frames before a waiting promise resumes, so none may be missed.
const received = [];
let position = 0;
let wake = () => {};

const client = new OpenAI({ apiKey: secret, baseURL });
// The SDK's documented URL hook, to state the caller's consent (as a tenant's backend
// does); the SDK requires wss:// of it too.
const withConsent = (sdk) => {
  const url = new URL(`${sdk.baseURL}/realtime`);
  url.protocol = 'wss:';
  url.searchParams.set('model', agentId);
  url.searchParams.set('consent', 'transcript');
  return url;
};
const rt = new OpenAIRealtimeWS({ model: agentId, buildRealtimeURL: withConsent }, client);
rt.on('error', (error) => seen.errors.push(String(error.message || error)));
rt.on('event', (event) => {
  seen.types.push(event.type);
  if (event.type === 'error') seen.errors.push(event.error);
  if (event.type === 'response.output_audio_transcript.done') seen.transcripts.push(event.transcript);
  if (event.type === 'response.done') seen.statuses.push(event.response.status);
  received.push(event);
  wake();
});

async function until(predicate, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    while (position < received.length) {
      const event = received[position++];
      if (predicate(event)) return event;
    }
    if (Date.now() > deadline) throw new Error(`timed out; saw ${seen.types.slice(-10)}`);
    await new Promise((resolve) => {
      wake = resolve;
      setTimeout(resolve, 250);
    });
  }
}

function say(text) {
  rt.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text }] } });
  rt.send({ type: 'response.create' });
}

await new Promise((resolve, reject) => { rt.socket.once('open', resolve); rt.socket.once('error', reject); });
seen.notes.push(`connected to ${rt.url.protocol}//${rt.url.host}`);
say('When are you open?');
await until((e) => e.type === 'response.output_audio_transcript.done' && e.transcript.includes('noon'));
await until((e) => e.type === 'response.done');
for (let start = 0; start < speech.length; start += 1920) {
  rt.send({ type: 'input_audio_buffer.append', audio: speech.subarray(start, start + 1920).toString('base64') });
}
const booked = await until((e) => e.type === 'response.output_audio_transcript.done' && e.transcript.includes('booked'));
await until((e) => e.type === 'response.done');
rt.send({ type: 'conversation.item.truncate', item_id: booked.item_id, content_index: 0, audio_end_ms: 300 });
await until((e) => e.type === 'conversation.item.truncated');
say('Is there parking nearby?');
await until((e) => e.type === 'response.created');
rt.send({ type: 'response.cancel' });
await until((e) => e.type === 'response.done');
rt.close();
await new Promise((resolve) => rt.socket.once('close', resolve));
seen.notes.push('closed');
console.log(JSON.stringify(seen));
