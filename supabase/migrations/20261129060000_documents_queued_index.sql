-- The ingest sweep's probe for `queued` documents whose message was lost (issue 24 review: SQS refused the
-- send after the commit of a reprocess or of the sweep's own requeue): nothing touched them for two hours,
-- and the sweep sends their messages again. Like its probes of `uploading` and `processing` documents, a
-- partial index, so the sweep every 15 minutes never reads the whole table.
create index idx_documents_queued on public.documents (updated_at) where status = 'queued';
