// The API reference: the edge's own OpenAPI document (GET /openapi.json), rendered as a page.
const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  for (const child of children) node.append(child);
  return node;
}

// The document's prose marks code with `backticks`: shown as code, never parsed as HTML.
function prose(tag, text, props = {}) {
  const parts = (text || "").split("`");
  return el(tag, props, ...parts.map((part, i) => (i % 2 ? el("code", { textContent: part }) : part)));
}

function schemaText(schema, components) {
  const seen = new Set();
  const resolve = (value) => {
    if (Array.isArray(value)) return value.map(resolve);
    if (value && typeof value === "object") {
      if (typeof value.$ref === "string" && !seen.has(value.$ref)) {
        seen.add(value.$ref);
        const name = value.$ref.split("/").pop();
        const resolved = resolve(components[name] || {});
        seen.delete(value.$ref);
        return resolved;
      }
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(v)]));
    }
    return value;
  };
  return JSON.stringify(resolve(schema), null, 2);
}

async function main() {
  let base = location.origin;
  try {
    const response = await fetch("config.json");
    if (response.ok) base = (await response.json()).api;
  } catch {
    // no config.json: the API is behind the same origin
  }
  $("document-link").href = `${base}/openapi.json`;
  let doc;
  try {
    const response = await fetch(`${base}/openapi.json`);
    if (!response.ok) throw new Error(`the API answered ${response.status}`);
    doc = await response.json();
  } catch (error) {
    $("error").textContent = `cannot read ${base}/openapi.json: ${error.message}`;
    $("error").hidden = false;
    return;
  }
  const schemas = (doc.components && doc.components.schemas) || {};
  const main = $("reference");
  main.replaceChildren(
    el("h2", { textContent: `${doc.info.title} ${doc.info.version}` }),
    prose("p", doc.info.description),
  );
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!["get", "post", "put", "delete", "patch"].includes(method)) continue;
      const section = el("section", { className: "operation" });
      section.dataset.operation = `${method.toUpperCase()} ${path}`;
      section.append(el("h3", {}, el("code", { textContent: `${method.toUpperCase()} ${path}` })));
      section.append(prose("p", op.summary));
      if (op.description) section.append(prose("p", op.description, { className: "muted" }));
      const params = [...(item.parameters || []), ...(op.parameters || [])];
      if (params.length) {
        section.append(el("h4", { textContent: "Parameters" }));
        section.append(el("ul", {}, ...params.map((p) => el("li", {},
          el("code", { textContent: p.name }), ` (${p.in}${p.required ? ", required" : ""}) `,
          prose("span", p.description)))));
      }
      const body = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
      if (body) {
        section.append(el("h4", { textContent: "Request body" }));
        section.append(el("pre", { textContent: schemaText(body.schema, schemas) }));
      }
      section.append(el("h4", { textContent: "Responses" }));
      section.append(el("ul", {}, ...Object.entries(op.responses || {}).map(([code, r]) =>
        el("li", {}, el("code", { textContent: code }), " ", prose("span", r.description)))));
      main.append(section);
    }
  }
}

main();
