// Watching tasks over one websocket: one subscription per task, each resumed from its own
// cursor after the connection drops, so its handler gets every event once, in order, or a fresh
// snapshot where the log it came from was lost (see the README's protocol).

const MAX_BACKOFF_MS = 5000;
const TOKEN_MARGIN_MS = 30000;
// Refusals after which the same subscription may succeed on a new connection.
const RETRYABLE = new Set(["unavailable", "rate_limited"]);

export class Watcher {
  // onState("live" | "reconnecting" | "error", message) tells the page how the connection is.
  constructor(api, onState = () => {}) {
    this.api = api;
    this.onState = onState;
    this.subs = new Map();
    this.ws = null;
    this.url = null;
    this.failures = 0;
    this.timer = null;
  }

  // Watch taskId: handler gets its snapshot, events, end and errors. watch is the {url, token,
  // expires_at} of a submit answer, or null to ask for one. Returns the function that stops it.
  // A task already watched keeps its subscription; the new handler gets what follows.
  async watch(taskId, watch, handler) {
    const stop = () => {
      const sub = this.subs.get(taskId);
      if (sub && sub.handler === handler) this.unwatch(taskId);
    };
    const existing = this.subs.get(taskId);
    if (existing) {
      existing.handler = handler;
      return stop;
    }
    if (!watch) watch = (await this.api.watchToken(taskId)).watch;
    if (this.subs.has(taskId)) {
      this.subs.get(taskId).handler = handler;
      return stop;
    }
    const sub = { taskId, token: watch.token, expiresAt: watch.expires_at, cursor: null, handler };
    this.subs.set(taskId, sub);
    this.url = watch.url;
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.send(sub);
    else this.connect();
    return stop;
  }

  // Subscribe again from an earlier position of the same log, to read its history. What the old
  // subscription still sends is dropped until the new snapshot, which starts it all over; if
  // the log no longer reaches back that far, the watch goes back to where it was.
  rewind(taskId, cursor, fallBack = true) {
    const sub = this.subs.get(taskId);
    if (!sub || !this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(JSON.stringify({ op: "unsubscribe", task_id: taskId }));
    sub.before = fallBack ? sub.cursor : null;
    sub.cursor = cursor;
    sub.rewinding = true;
    this.send(sub);
  }

  unwatch(taskId) {
    if (!this.subs.delete(taskId)) return;
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ op: "unsubscribe", task_id: taskId }));
    }
    if (this.subs.size === 0) this.close();
  }

  close() {
    this.subs.clear();
    clearTimeout(this.timer);
    this.timer = null;
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = null;
      ws.close();
    }
  }

  connect() {
    if (this.ws || this.timer) return;
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => {
      this.onState("live");
      for (const sub of this.subs.values()) this.send(sub);
    };
    ws.onerror = () => {}; // a close follows, and reconnects
    ws.onmessage = ({ data }) => {
      let message;
      try {
        message = JSON.parse(data);
      } catch {
        this.onState("error", "the realtime service sent a message that is not JSON");
        return;
      }
      this.receive(message).catch((error) => this.onState("error", error.message));
    };
    ws.onclose = () => {
      this.ws = null;
      if (this.subs.size === 0) return;
      this.onState("reconnecting");
      const delay = Math.min(MAX_BACKOFF_MS, 250 * 2 ** this.failures++);
      this.timer = setTimeout(() => {
        this.timer = null;
        this.refreshAndConnect();
      }, delay);
    };
  }

  async refreshAndConnect() {
    for (const sub of this.subs.values()) {
      if (sub.expiresAt * 1000 < Date.now() + TOKEN_MARGIN_MS) await this.refresh(sub);
    }
    if (this.subs.size > 0) this.connect();
  }

  // A fresh token from the API; if that fails, the handler is told, and the next reconnect
  // tries again (the backoff grows until a snapshot arrives).
  async refresh(sub) {
    try {
      const { watch } = await this.api.watchToken(sub.taskId);
      sub.token = watch.token;
      sub.expiresAt = watch.expires_at;
    } catch (error) {
      sub.handler({ op: "error", code: error.code, message: error.message, task_id: sub.taskId });
    }
  }

  send(sub) {
    this.ws.send(JSON.stringify({ op: "subscribe", task_id: sub.taskId, token: sub.token, cursor: sub.cursor }));
  }

  async receive(message) {
    const taskId = message.task_id || (message.event && message.event.task_id);
    const sub = this.subs.get(taskId);
    if (!sub) {
      if (message.op === "error") this.onState("error", message.message);
      return;
    }
    if (sub.rewinding) {
      if (message.op !== "snapshot" && message.op !== "error") return;
      sub.rewinding = false;
      if (message.op === "snapshot" && !message.resumed && sub.before) {
        // The history is gone (a trimmed log): resume where the watch was instead.
        this.rewind(taskId, sub.before, false);
        return;
      }
    }
    if (message.op === "snapshot") {
      sub.cursor = message.cursor;
      this.failures = 0; // the connection works: the next drop starts the backoff afresh
    }
    if (message.op === "event") sub.cursor = { epoch: message.event.epoch, seq: message.event.seq };
    if (message.op === "error" && (message.code === "token_expired" || RETRYABLE.has(message.code))) {
      // The server closes after a refusal; the reconnect subscribes again (with a new token).
      if (message.code === "token_expired") sub.expiresAt = 0;
      this.onState("reconnecting");
      return;
    }
    sub.handler(message);
    if (message.op === "end" || message.op === "error") this.unwatch(taskId);
  }
}
