// Reads one reply of OneAI's `POST /chat/stream` with the real Vercel AI SDK client, as the web frontend does.
//
//   node read_chat_stream.mjs <base_url> <bearer_token> <model> <text> [chat_id]
//
// `model` "-": the transport is left at its defaults (no `body` option, so the request names no model).
// `chat_id` "generate": a chat id from the SDK's own `generateId()`, as `useChat` makes one.
// Environment `ONEAI_CHATBOT_ID`: the body names that chatbot (`chatbot_id`), as a chatbot's test chat does.
// Environment `ONEAI_CHAT_API`: the URL posted to instead of `<base_url>/chat/stream` (the widget's public
// chat, `<base_url>/public/chatbots/<public_id>/chat`, with a visitor session token as the bearer token).
//
// `DefaultChatTransport.sendMessages` posts the AI SDK body (`{model, id?, messages, trigger, messageId}`)
// and parses the response into UI message chunks with the SDK's own schema; `readUIMessageStream` rebuilds
// the assistant message from them. The chunk stream is teed so the chunks themselves are seen as well.
//
// Prints one JSON line: {chatId, messageId, role, text, dataParts: [{type, id, data}],
// fileParts: [{mediaType, url}], sourceParts: [{sourceId, mediaType, title, filename, providerMetadata}],
// partTypes (the rebuilt message's parts, in order), chunkTypes, error}.
// `error` is the text of an `error` chunk as the SDK surfaced it (null when none). Anything else that goes
// wrong (HTTP error, a chunk the SDK rejects, a chunk it cannot apply to the message) exits non-zero.
import { randomUUID } from 'node:crypto';
import { DefaultChatTransport, generateId, readUIMessageStream } from 'ai';

const TIMEOUT_MS = 45_000;

async function readChunks(stream, chunks) {
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    chunks.push(value);
  }
}

async function lastMessage(stream, onError) {
  let message;
  for await (const snapshot of readUIMessageStream({ stream, onError })) {
    message = snapshot;
  }
  return message;
}

async function main(argv) {
  if (argv.length < 4 || argv.length > 5) {
    throw new Error('usage: node read_chat_stream.mjs <base_url> <bearer_token> <model> <text> [chat_id]');
  }
  const [baseUrl, token, model, text, chatIdArg] = argv;
  const chatId = chatIdArg === 'generate' ? generateId() : chatIdArg;
  const options = {
    api: process.env.ONEAI_CHAT_API || `${baseUrl.replace(/\/+$/, '')}/chat/stream`,
    headers: { Authorization: `Bearer ${token}` },
  };
  const chatbotId = process.env.ONEAI_CHATBOT_ID;
  const body = { ...(model === '-' ? {} : { model }), ...(chatbotId ? { chatbot_id: chatbotId } : {}) };
  const transport = new DefaultChatTransport(Object.keys(body).length === 0 ? options : { ...options, body });
  const stream = await transport.sendMessages({
    chatId: chatId || undefined, // no chat id: the body has no `id` and the server starts a conversation
    messages: [{ id: randomUUID(), role: 'user', parts: [{ type: 'text', text }] }],
    trigger: 'submit-message',
    messageId: undefined,
    abortSignal: AbortSignal.timeout(TIMEOUT_MS),
  });

  const [forMessage, forChunks] = stream.tee();
  const chunks = [];
  const surfaced = []; // every error readUIMessageStream reported through onError
  const [message] = await Promise.all([
    lastMessage(forMessage, error => surfaced.push(error)),
    readChunks(forChunks, chunks), // rejects when the SDK's chunk parser rejects the stream
  ]);

  // An `error` chunk reaches onError as `new Error(errorText)`; any other reported error is a failure
  // to process the stream (readUIMessageStream does not throw those by default).
  const errorTexts = chunks.filter(chunk => chunk.type === 'error').map(chunk => chunk.errorText);
  const unexpected = surfaced.filter(error => !errorTexts.includes(error?.message));
  if (unexpected.length > 0) throw unexpected[0];
  if (message === undefined) throw new Error('readUIMessageStream produced no message');

  const parts = message.parts ?? [];
  return {
    chatId: chatId ?? null,
    messageId: message.id,
    role: message.role,
    text: parts
      .filter(part => part.type === 'text')
      .map(part => part.text)
      .join(''),
    dataParts: parts
      .filter(part => part.type.startsWith('data-'))
      .map(part => ({ type: part.type, id: part.id ?? null, data: part.data })),
    fileParts: parts
      .filter(part => part.type === 'file')
      .map(part => ({ mediaType: part.mediaType, url: part.url })),
    sourceParts: parts
      .filter(part => part.type === 'source-document')
      .map(part => ({
        sourceId: part.sourceId,
        mediaType: part.mediaType,
        title: part.title,
        filename: part.filename ?? null,
        providerMetadata: part.providerMetadata ?? null,
      })),
    partTypes: parts.map(part => part.type),
    chunkTypes: chunks.map(chunk => chunk.type),
    error: surfaced.length > 0 ? surfaced.map(error => error.message).join('\n') : null,
  };
}

try {
  const result = await main(process.argv.slice(2));
  process.stdout.write(`${JSON.stringify(result)}\n`);
} catch (error) {
  process.stderr.write(`read_chat_stream failed: ${error?.stack ?? error}\n`);
  if (error?.cause) process.stderr.write(`caused by: ${error.cause?.stack ?? error.cause}\n`);
  process.exitCode = 1;
}
