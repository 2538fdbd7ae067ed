"""Admin for chats: issue 7."""
