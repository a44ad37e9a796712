"""AiSHA desktop console.  Qt lives only in the upper layers (views, dialogs, models, bridge);
`client/`, `replica/` and `sync/` are plain asyncio so they run and test without a display."""
