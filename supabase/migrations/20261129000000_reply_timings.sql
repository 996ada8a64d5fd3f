-- How fast a chatbot answered its visitors (issue 28, item 2: "response times ... recorded per reply").
--
-- On a visitor conversation's assistant rows: `ttft_ms`, from the visitor's message being received to the
-- reply's first text (or, for a fixed fallback message, the message itself), and `total_ms`, to the reply's
-- end. Null on the visitor's own messages and on replies that never produced text (an error before the
-- first token). The analytics rollups read them; nothing else does.

alter table public.visitor_messages
  add column ttft_ms integer check (ttft_ms is null or ttft_ms >= 0),
  add column total_ms integer check (total_ms is null or total_ms >= 0),
  add constraint visitor_messages_timings check (
    (role = 'assistant' or (ttft_ms is null and total_ms is null))
    and (ttft_ms is null or total_ms is null or ttft_ms <= total_ms));
