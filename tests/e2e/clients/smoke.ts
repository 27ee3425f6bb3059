// A host application's first steps with openapi-fetch and the types openapi-typescript
// generates from Parley's document (tests/e2e/test_generated_clients.py compiles it
// with `tsc --strict` and runs it). Environment: BASE, KEY, AGENT_USER, AGENT_PASSWORD.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

declare const process: { env: Record<string, string | undefined> };

type Conversation = components["schemas"]["Conversation"];

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const base = env("BASE");
const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
const host = createClient<paths>({ baseUrl: base, headers: bearer(env("KEY")) });

const registered = await host.POST("/api/v1/customers", {
  body: { name: "Grace Hopper", external_id: crypto.randomUUID() },
});
if (!registered.data) throw new Error(`register: ${JSON.stringify(registered.error)}`);
const customerId: string = registered.data.customer_id;
const customer = createClient<paths>({ baseUrl: base, headers: bearer(registered.data.token) });

const sent = await customer.POST("/api/v1/messages", {
  body: { message_id: crypto.randomUUID(), body: "Is my order on its way?" },
});
if (!sent.data) throw new Error(`send: ${JSON.stringify(sent.error)}`);

const login = await createClient<paths>({ baseUrl: base }).POST("/api/v1/auth/agent", {
  body: { username: env("AGENT_USER"), password: env("AGENT_PASSWORD") },
});
if (!login.data) throw new Error(`log in: ${JSON.stringify(login.error)}`);
const agent = createClient<paths>({ baseUrl: base, headers: bearer(login.data.token) });

const page = await agent.GET("/api/v1/conversations", {
  params: { query: { status: "open", min_position: sent.data.position } },
});
if (!page.data) throw new Error(`list: ${JSON.stringify(page.error)}`);
const listed: Conversation[] = page.data.conversations.filter((c) => c.customer_id === customerId);

const claimed = await agent.POST("/api/v1/conversations/{customer_id}/claim", {
  params: { path: { customer_id: customerId } },
});
if (!claimed.data) throw new Error(`claim: ${JSON.stringify(claimed.error)}`);

const replied = await agent.POST("/api/v1/conversations/{customer_id}/messages", {
  params: { path: { customer_id: customerId } },
  body: { message_id: crypto.randomUUID(), body: "It left on Tuesday." },
});
if (!replied.data) throw new Error(`reply: ${JSON.stringify(replied.error)}`);

const badge = await customer.GET("/api/v1/badge", {
  params: { query: { min_position: replied.data.position } },
});
if (!badge.data) throw new Error(`badge: ${JSON.stringify(badge.error)}`);

// A refusal is the one Error schema.
const refused = await agent.POST("/api/v1/messages", {
  body: { message_id: crypto.randomUUID(), body: "not a customer" },
});
const code: string | undefined = refused.error?.error.code;

console.log(JSON.stringify({
  customer_id: customerId,
  listed: listed.map((c) => ({ customer_name: c.customer_name, status: c.status, last_message: c.last_message?.preview ?? null })),
  claimed_by: claimed.data.conversation.assignee?.name ?? null,
  badge: badge.data.unread,
  refused: code,
}));
