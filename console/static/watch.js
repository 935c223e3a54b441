// Watching tasks over one websocket: many subscriptions, each resumed from its own cursor after
// the connection drops, so no event is missed or shown twice (see the README's protocol).

const MAX_BACKOFF_MS = 5000;
const TOKEN_MARGIN_MS = 30000;

export class Watcher {
  // onState("live" | "reconnecting") tells the page whether it is connected.
  constructor(api, onState = () => {}) {
    this.api = api;
    this.onState = onState;
    this.subs = new Map();
    this.ws = null;
    this.url = null;
    this.failures = 0;
    this.timer = null;
  }

  // Watch taskId; handlers get every snapshot, event, end and error message for it.
  // watch is {url, token, expires_at} (from submit or POST /tasks/{id}/watch), or null.
  async watch(taskId, watch, handler) {
    if (!watch) watch = (await this.api.watchToken(taskId)).watch;
    const sub = { taskId, token: watch.token, expiresAt: watch.expires_at, cursor: null, handler, fresh: true };
    this.subs.set(taskId, sub);
    this.url = watch.url;
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.send(sub);
    else this.connect();
    return () => this.unwatch(taskId);
  }

  // Subscribe again from an earlier position of the same log (to read its history).
  rewind(taskId, cursor) {
    const sub = this.subs.get(taskId);
    if (!sub || !this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(JSON.stringify({ op: "unsubscribe", task_id: taskId }));
    sub.cursor = cursor;
    // What the old subscription still sends (up to its end) is dropped: the new one, from its
    // snapshot on, sends it all again.
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
      this.failures = 0;
      this.onState("live");
      for (const sub of this.subs.values()) this.send(sub);
    };
    ws.onmessage = ({ data }) => this.receive(JSON.parse(data));
    ws.onclose = () => {
      this.ws = null;
      if (this.subs.size === 0) return;
      this.onState("reconnecting");
      const delay = Math.min(MAX_BACKOFF_MS, 250 * 2 ** this.failures++);
      this.timer = setTimeout(() => { this.timer = null; this.refreshAndConnect(); }, delay);
    };
  }

  async refreshAndConnect() {
    for (const sub of this.subs.values()) {
      if (sub.expiresAt * 1000 < Date.now() + TOKEN_MARGIN_MS) await this.refresh(sub);
    }
    this.connect();
  }

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
    }
    if (message.op === "snapshot") sub.cursor = message.cursor;
    if (message.op === "event") sub.cursor = { epoch: message.event.epoch, seq: message.event.seq };
    if (message.op === "error" && message.code === "token_expired") {
      await this.refresh(sub);
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.send(sub);
      return;
    }
    sub.handler(message);
    if (message.op === "end" || message.op === "error") this.unwatch(taskId);
  }
}
