// The widget's stream reader (functions/widget/widget.js) against a recorded reply, cut into uneven
// chunks (inside events, inside multi-byte characters), as a network delivers it. node --test.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { test } from "node:test";

const require = createRequire(import.meta.url);
const widget = require("../../functions/widget/widget.js");
const recorded = readFileSync(new URL("../fixtures/widget/reply_stream.sse", import.meta.url));

function streamOf(bytes, sizes) {
  let offset = 0;
  let turn = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      const size = sizes[turn++ % sizes.length];
      controller.enqueue(new Uint8Array(bytes.subarray(offset, offset + size)));
      offset += size;
    },
  });
}

async function read(sizes) {
  const seen = [];
  const state = widget.replyState();
  await widget.readStream(streamOf(recorded, sizes), (part) => {
    seen.push(part.type);
    widget.applyPart(state, part);
  });
  return { seen, state };
}

test("every part of the recorded reply is read in order, whatever the chunking", async () => {
  const whole = await read([recorded.length]);
  assert.deepEqual(whole.seen, [
    "start", "data-conversation", "source-document", "source-document", "text-start",
    "text-delta", "text-delta", "text-delta", "text-delta", "text-end", "finish",
  ]);
  for (const sizes of [[1], [3, 7, 2], [17, 5], [64, 1, 9]]) {
    const cut = await read(sizes);
    assert.deepEqual(cut.seen, whole.seen, `chunks of ${sizes}`);
    assert.equal(cut.state.text, whole.state.text, `chunks of ${sizes}`);
  }
});

test("the reply's text, sources and conversation come out as sent (text only, nothing interpreted)", async () => {
  const { state } = await read([5, 11]);
  assert.equal(
    state.text,
    'Returns are free within 30 days — see <img src=x onerror="window.__pwned=1"> and ' +
      "[the form](javascript:window.__pwned=2) " +
      '<a href="javascript:window.__pwned=3">here</a>. Obrigado! 🙂',
  );
  assert.deepEqual(state.sources.map((s) => s.title), ["returns-policy.pdf p. 2", "<img src=x onerror=alert(1)>.html p. 1"]);
  assert.equal(state.conversationId, "0b8e4f2a-9c3d-4e5f-a6b7-c8d9e0f1a2b3");
  assert.equal(state.finished, true);
  assert.equal(state.error, null);
});

test("an error part and a stream cut before finish are told apart", async () => {
  const text = 'data: {"type":"start"}\n\ndata: {"type":"error","errorText":"upstream failed"}\n\ndata: [DONE]\n\n';
  const state = widget.replyState();
  await widget.readStream(streamOf(Buffer.from(text), [9]), (part) => widget.applyPart(state, part));
  assert.equal(state.error, "upstream failed");
  const cut = widget.replyState();
  const partial = 'data: {"type":"text-delta","id":"t0","delta":"Hel"}\n\ndata: {"type":"text-del';
  await widget.readStream(streamOf(Buffer.from(partial), [4]), (part) => widget.applyPart(cut, part));
  assert.equal(cut.text, "Hel");
  assert.equal(cut.finished, false);
});
