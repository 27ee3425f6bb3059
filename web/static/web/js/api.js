// The JSON API, as the page's cookie or as a bearer token: the CSRF header
// on cookie writes, the contract's error shape turned into an ApiError.
//
// The pages use their cookie. The website widget's frame has none (a
// browser that blocks third-party cookies would never send it): it calls
// useBearer(token) once it knows who it speaks for, and every request of
// every module then carries that token and no cookie at all.

export class ApiError extends Error {
  constructor(status, code, detail, retryAfter = 0) {
    super(detail || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter; // seconds, from Retry-After (a rate limit)
  }
}

let bearer = null;

// Speak as this customer token from now on (null: back to the page's cookie).
export function useBearer(token) {
  bearer = token || null;
}

export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

// The credentials of a request: the bearer token (this page's, or `token` for
// this request only), or the cookie (and the CSRF header on writes).
export function authorize(method, headers = {}, token = bearer) {
  if (token) return { headers: { ...headers, Authorization: `Bearer ${token}` }, credentials: "omit" };
  if (method !== "GET") headers = { ...headers, "X-CSRFToken": csrfToken() };
  return { headers, credentials: "same-origin" };
}

async function errorOf(response) {
  let data = null;
  try {
    const text = await response.text();
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  const error = (data && data.error) || {};
  const retryAfter = Number(response.headers.get("Retry-After")) || 0;
  return new ApiError(response.status, error.code || "http_error", error.detail || `HTTP ${response.status}`, retryAfter);
}

// `token`: ask as this customer token, this once (the page's own credentials stay as they are).
export async function api(method, path, body, { token = bearer } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      ...authorize(method, headers, token),
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (err) {
    throw new ApiError(0, "network_error", "No connection to the server");
  }
  if (!response.ok) throw await errorOf(response);
  const text = await response.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

// A file of this server (an attachment) as a blob: URL, fetched with this
// page's credentials (the widget's token: an <img src> could not carry it).
export async function blobUrl(path) {
  let response;
  try {
    response = await fetch(path, { ...authorize("GET"), cache: "default" });
  } catch {
    throw new ApiError(0, "network_error", "No connection to the server");
  }
  if (!response.ok) throw await errorOf(response);
  return URL.createObjectURL(await response.blob());
}

// Every message of a conversation after `after`, page by page (oldest first).
export async function syncMessages(path, after = 0, limit = 500) {
  const messages = [];
  let position = after;
  for (let page = 0; page < 200; page++) {
    const sep = path.includes("?") ? "&" : "?";
    const data = await api("GET", `${path}${sep}after=${position}&limit=${limit}`);
    messages.push(...data.messages);
    position = data.position;
    if (data.messages.length < limit) break;
  }
  return { messages, position };
}
