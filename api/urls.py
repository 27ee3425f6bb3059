"""Every route of the API, in one place (included from project.urls at the root)."""

from django.urls import path

from api import (
    accounts,
    attachments,
    canned,
    chat,
    conversations,
    customers,
    health,
    inbound,
    openapi,
    privacy,
    push,
    ratings,
    reports,
    search,
    webhook_endpoints,
    widget,
)

urlpatterns = [
    path("healthz", health.healthz),
    path("api/v1/openapi.json", openapi.openapi_json),
    # identity
    path("api/v1/auth/agent", accounts.agent_token),
    path("api/v1/auth/agent/token", accounts.revoke_current_token),
    path("api/v1/agents", accounts.agents),
    path("api/v1/agents/me", accounts.agent_me),
    path("api/v1/customers", customers.customers),
    path("api/v1/customers/<str:customer_id>", customers.customer_detail),
    path("api/v1/customers/<str:customer_id>/erase", privacy.erase),
    path("api/v1/customers/<str:customer_id>/export", privacy.export),
    # messages
    path("api/v1/messages", chat.messages),
    # before messages/<message_id>, which would take "search" for an id
    path("api/v1/messages/search", search.messages_search),
    path("api/v1/messages/<str:message_id>", chat.message_detail),
    path("api/v1/messages/<str:message_id>/read", chat.message_read),
    path("api/v1/badge", chat.badge),
    path("api/v1/attachments", attachments.attachments),
    path("api/v1/attachments/<str:attachment_id>/content", attachments.attachment_content),
    path("api/v1/attachments/<str:attachment_id>/thumbnail", attachments.attachment_thumbnail),
    path("api/v1/conversations", chat.conversations),
    path("api/v1/conversations/<str:customer_id>", chat.conversation_detail),
    path("api/v1/conversations/<str:customer_id>/messages", chat.conversation_messages),
    # team workflow
    path("api/v1/conversations/<str:customer_id>/claim", conversations.claim),
    path("api/v1/conversations/<str:customer_id>/assign", conversations.assign),
    path("api/v1/conversations/<str:customer_id>/status", conversations.status),
    path("api/v1/conversations/<str:customer_id>/snooze", conversations.snooze),
    path("api/v1/conversations/<str:customer_id>/notes", conversations.notes),
    path("api/v1/conversations/<str:customer_id>/labels", conversations.labels),
    path("api/v1/conversations/<str:customer_id>/unread", conversations.unread),
    path("api/v1/labels", conversations.label_list),
    path("api/v1/rating", ratings.rating),
    path("api/v1/canned-responses", canned.canned_responses),
    path("api/v1/canned-responses/<str:id>", canned.canned_response),
    # reports
    path("api/v1/reports/summary", reports.summary),
    path("api/v1/reports/daily", reports.daily),
    # search
    path("api/v1/search", search.search),
    # push
    path("api/v1/push/public-key", push.public_key),
    path("api/v1/push-subscriptions", push.subscriptions),
    path("api/v1/push-subscriptions/<str:subscription_id>", push.subscription_detail),
    # outbound webhooks
    path("api/v1/webhook-endpoints", webhook_endpoints.endpoints),
    path("api/v1/webhook-endpoints/<str:endpoint_id>", webhook_endpoints.endpoint_detail),
    path("api/v1/webhook-endpoints/<str:endpoint_id>/rotate-secret", webhook_endpoints.rotate_secret),
    # the website widget
    path("api/v1/widget", widget.widget),
    path("api/v1/widget/visitors", widget.visitors),
    path("api/v1/widget/me", widget.me),
    path("api/v1/widget/logout", widget.logout),
    # other channels
    path("webhooks/v1/inbound/<str:source>", inbound.receive, name="inbound-webhook"),
]
