// BatchChat page helpers (no build step). Filled in by the chat view.
