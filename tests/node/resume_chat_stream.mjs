// A reload in the middle of a reply, with the real Vercel AI SDK client: one `Chat` sends a message and
// reads the whole reply; while it is streaming, a second `Chat` with the same id and no messages (a fresh
// page) calls `resumeStream()`, which GETs `${api}/${chatId}/stream` (DefaultChatTransport's reconnect
// address). When both are done, the second calls `resumeStream()` again (nothing to resume: 204).
//
//   node resume_chat_stream.mjs <base_url> <bearer_token> <model> <text>
//
// Prints one JSON line: {chatId, original, resumed, afterEnd} where original/resumed are the assistant
// message each Chat rebuilt ({messageId, text, dataParts}) and afterEnd is {status, messages} of the
// second Chat after the last resumeStream(). Any error the SDK reports exits non-zero.
import { randomUUID } from 'node:crypto';
import { AbstractChat, DefaultChatTransport } from 'ai';

const TIMEOUT_MS = 45_000;

// The smallest ChatState: what the framework bindings (React, Vue, Svelte) keep in their own stores.
class PlainState {
  constructor() {
    this.status = 'ready';
    this.error = undefined;
    this.messages = [];
  }
  pushMessage(message) {
    this.messages = [...this.messages, message];
  }
  popMessage() {
    this.messages = this.messages.slice(0, -1);
  }
  replaceMessage(index, message) {
    this.messages = this.messages.map((m, i) => (i === index ? message : m));
  }
  snapshot(thing) {
    return structuredClone(thing);
  }
}

class PlainChat extends AbstractChat {
  constructor(init) {
    super({ ...init, state: new PlainState() });
  }
  get messages() {
    return this.state.messages;
  }
}

function assistant(chat) {
  const message = chat.messages.findLast(m => m.role === 'assistant');
  if (message === undefined) return null;
  return {
    messageId: message.id,
    text: message.parts
      .filter(part => part.type === 'text')
      .map(part => part.text)
      .join(''),
    dataParts: message.parts
      .filter(part => part.type.startsWith('data-'))
      .map(part => ({ type: part.type, id: part.id ?? null, data: part.data })),
  };
}

async function main(argv) {
  if (argv.length !== 4) throw new Error('usage: node resume_chat_stream.mjs <base_url> <bearer_token> <model> <text>');
  const [baseUrl, token, model, text] = argv;
  const chatId = randomUUID();
  const errors = [];
  const makeChat = () =>
    new PlainChat({
      id: chatId,
      transport: new DefaultChatTransport({
        api: `${baseUrl.replace(/\/+$/, '')}/chat/stream`,
        headers: { Authorization: `Bearer ${token}` },
        body: { model },
      }),
      onError: error => errors.push(error),
    });

  const original = makeChat();
  const sending = original.sendMessage({ text });
  const deadline = Date.now() + TIMEOUT_MS;
  // Wait until the original shows some of the reply, then "reload".
  while (!(original.status === 'streaming' && (assistant(original)?.text ?? '').length > 0)) {
    if (Date.now() > deadline) throw new Error('the original chat never started streaming');
    await new Promise(resolve => setTimeout(resolve, 10));
  }
  const reloaded = makeChat();
  await Promise.all([sending, reloaded.resumeStream()]);
  const resumed = assistant(reloaded);
  await reloaded.resumeStream();
  if (errors.length > 0) throw errors[0];
  return {
    chatId,
    original: assistant(original),
    resumed,
    afterEnd: { status: reloaded.status, messages: reloaded.messages.length },
  };
}

try {
  const result = await main(process.argv.slice(2));
  process.stdout.write(`${JSON.stringify(result)}\n`);
} catch (error) {
  process.stderr.write(`resume_chat_stream failed: ${error?.stack ?? error}\n`);
  process.exitCode = 1;
}
