// The HTTP API, as any browser client calls it: JSON, X-Api-Key, CORS.
// Every failure becomes an ApiError whose message says what happened in words.

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

export class Api {
  constructor(base, key) {
    this.base = base.replace(/\/$/, "");
    this.key = key;
  }

  async request(method, path, { body, headers = {} } = {}) {
    let response;
    try {
      response = await fetch(this.base + path, {
        method,
        headers: {
          "X-Api-Key": this.key,
          ...(body === undefined ? {} : { "Content-Type": "application/json" }),
          ...headers,
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new ApiError(0, "unreachable", `cannot reach the API at ${this.base} (${error.message}); is the stack running?`);
    }
    let answer = null;
    try {
      answer = await response.json();
    } catch {
      // not JSON: said below with the status
    }
    if (!response.ok) {
      const error = answer && answer.error;
      if (error && error.message) {
        const where = error.field ? ` (${error.field}${error.rule ? `: ${error.rule}` : ""})` : "";
        throw new ApiError(response.status, error.code, `${error.message}${where}`, error.field);
      }
      throw new ApiError(response.status, "http_error", `the API answered ${response.status} ${response.statusText}`);
    }
    return answer;
  }

  taskTypes() { return this.request("GET", "/task-types"); }
  submit(body, idempotencyKey) {
    const headers = idempotencyKey ? { "Idempotency-Key": idempotencyKey } : {};
    return this.request("POST", "/tasks", { body, headers });
  }
  get(taskId) { return this.request("GET", `/tasks/${encodeURIComponent(taskId)}`); }
  list(params) {
    const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v));
    return this.request("GET", `/tasks?${query}`);
  }
  watchToken(taskId) { return this.request("POST", `/tasks/${encodeURIComponent(taskId)}/watch`); }
  cancel(taskId) { return this.request("POST", `/tasks/${encodeURIComponent(taskId)}/cancel`); }
  resubmit(taskId) { return this.request("POST", `/tasks/${encodeURIComponent(taskId)}/resubmit`); }
  overview() { return this.request("GET", "/ops/overview"); }
  deadLetters() { return this.request("GET", "/ops/dead-letters"); }
  replayDead(ids) { return this.request("POST", "/ops/dead-letters/replay", { body: ids ? { ids } : { all: true } }); }
  purgeDead() { return this.request("POST", "/ops/dead-letters/purge"); }
}
