"""A host application's first steps with the Python client that openapi-python-client
generates from Parley's document (tests/e2e/test_generated_clients.py runs it).

Environment: BASE (the server), KEY (the integration key), AGENT_USER and
AGENT_PASSWORD; the generated package ``parley_client`` on PYTHONPATH. Prints
one JSON object with what it saw.
"""

import json
import os
import uuid

from parley_client import AuthenticatedClient, Client
from parley_client.api.accounts import log_in_agent
from parley_client.api.chat import get_badge, list_conversations, send_agent_message, send_message
from parley_client.api.conversations import claim_conversation
from parley_client.api.customers import register_customer
from parley_client.models import (
    AgentCredentials,
    AgentToken,
    Badge,
    ConversationPage,
    ConversationStatus,
    ConversationWritten,
    CustomerRegistration,
    CustomerToken,
    Error,
    SendMessage,
    Written,
)

base = os.environ["BASE"]
host = AuthenticatedClient(base_url=base, token=os.environ["KEY"], raise_on_unexpected_status=True)

# The host application registers its user and hands the token to their browser or app.
registered = register_customer.sync(client=host, body=CustomerRegistration(name="Ada Lovelace",
                                                                             external_id=str(uuid.uuid4())))
assert isinstance(registered, CustomerToken), registered
customer = AuthenticatedClient(base_url=base, token=registered.token, raise_on_unexpected_status=True)

sent = send_message.sync(client=customer, body=SendMessage(message_id=uuid.uuid4(), body="Where is my order?"))
assert isinstance(sent, Written), sent

logged_in = log_in_agent.sync(client=Client(base_url=base), body=AgentCredentials(
    username=os.environ["AGENT_USER"], password=os.environ["AGENT_PASSWORD"]))
assert isinstance(logged_in, AgentToken), logged_in
agent = AuthenticatedClient(base_url=base, token=logged_in.token, raise_on_unexpected_status=True)

page = list_conversations.sync(client=agent, status=ConversationStatus.OPEN, min_position=sent.position)
assert isinstance(page, ConversationPage), page
mine = [c for c in page.conversations if c.customer_id == registered.customer_id]

claimed = claim_conversation.sync(registered.customer_id, client=agent)
assert isinstance(claimed, ConversationWritten), claimed
again = claim_conversation.sync(registered.customer_id, client=agent)  # one's own: changes nothing

replied = send_agent_message.sync(registered.customer_id, client=agent,
                                  body=SendMessage(message_id=uuid.uuid4(), body="It left on Tuesday."))
assert isinstance(replied, Written), replied
badge = get_badge.sync(client=customer, min_position=replied.position)
assert isinstance(badge, Badge), badge

# A refusal is the one Error model.
refused = send_message.sync(client=agent, body=SendMessage(message_id=uuid.uuid4(), body="not a customer"))
assert isinstance(refused, Error), refused

print(json.dumps({
    "customer_id": str(registered.customer_id),
    "listed": [{"customer_name": c.customer_name, "status": c.status.value,
                "last_message": c.last_message.preview if c.last_message else None} for c in mine],
    "claimed_by": claimed.conversation.assignee.name if claimed.conversation.assignee else None,
    "claimed_again": type(again).__name__,
    "badge": badge.unread,
    "refused": refused.error.code,
}))
