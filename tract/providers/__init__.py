"""Provider renderings of a compiled context: one module per provider, shared pairing rules in `turns`."""

from tract.providers.anthropic import messages_request
from tract.providers.gemini import generate_content_request
from tract.providers.openai import chat_messages, responses_request
from tract.providers.turns import conversation

__all__ = ["chat_messages", "conversation", "generate_content_request", "messages_request", "responses_request"]
