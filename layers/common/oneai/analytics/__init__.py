"""Analytics of a workspace's chatbots (issue 28 item 2): daily rollups kept by the scheduled analytics
function (`rollup`), the visitors' questions grouped by their embeddings (`questions`), and the answer of
`GET /workspaces/{id}/analytics` (`service`)."""
