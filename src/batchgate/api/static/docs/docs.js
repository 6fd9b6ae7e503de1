// Renders /openapi.json: operations grouped by tag, parameters with their limits, request and
// response schemas, and the error envelope. Plain DOM, no dependencies; text goes in as text.
"use strict";

const METHODS = ["get", "post", "put", "patch", "delete"];
let SCHEMAS = {}; // components.schemas of the loaded document, for following $ref
const LIMITS = [
  ["minimum", "≥ "], ["maximum", "≤ "], ["exclusiveMinimum", "> "], ["exclusiveMaximum", "< "],
  ["minLength", "min length "], ["maxLength", "max length "], ["minItems", "min items "],
  ["maxItems", "max items "], ["maxProperties", "max keys "], ["pattern", "matches "],
  ["format", "format "], ["default", "default "],
];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// `code` spans in descriptions become <code>; everything else stays text.
function prose(text, tag = "p", cls = "prose") {
  if (!text) return null;
  return el(tag, { class: cls }, text.split("`").map((part, i) => (i % 2 ? el("code", {}, part) : part)));
}

function refName(ref) {
  return ref.split("/").pop();
}

function slug(text) {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
}

function literal(value) {
  return typeof value === "string" ? JSON.stringify(value) : JSON.stringify(value);
}

// --- schemas --------------------------------------------------------------------------------------

function isNull(schema) {
  return schema && schema.type === "null";
}

function typeLabel(schema) {
  if (!schema || Object.keys(schema).length === 0) return el("span", { class: "type" }, "any");
  if (schema.$ref) {
    const name = refName(schema.$ref);
    return el("a", { class: "type ref", href: "#schema-" + slug(name) }, name);
  }
  if ("const" in schema) return el("span", { class: "type" }, literal(schema.const));
  const variants = schema.anyOf || schema.oneOf;
  if (variants) {
    const kept = variants.filter((v) => !isNull(v));
    const parts = kept.map(typeLabel);
    const joined = parts.flatMap((part, i) => (i ? [" | ", part] : [part]));
    return el("span", {}, joined, kept.length < variants.length ? el("span", { class: "null" }, " | null") : null);
  }
  let types = Array.isArray(schema.type) ? schema.type : [schema.type || (schema.properties ? "object" : "any")];
  const nullable = types.includes("null");
  types = types.filter((t) => t !== "null");
  const label = types.map((t) => (t === "array" && schema.items ? null : t)).filter(Boolean).join(" | ");
  const items = types.includes("array") && schema.items ? [typeLabel(schema.items), el("span", { class: "type" }, "[]")] : [];
  return el("span", {}, label ? el("span", { class: "type" }, label) : null, items,
    nullable ? el("span", { class: "null" }, " | null") : null);
}

function limits(schema) {
  schema = resolve(schema, new Set());
  if (!schema) return [];
  const found = [];
  const inner = schema.anyOf ? schema.anyOf.filter((v) => !isNull(v)) : [];
  for (const source of [schema, ...inner]) {
    for (const [key, label] of LIMITS) {
      if (key in source) found.push(el("span", { class: "limit" }, label, el("code", {}, key === "pattern" ? source[key] : literal(source[key]))));
    }
    if (source.enum) found.push(el("span", { class: "limit" }, "one of ", source.enum.map((v, i) => [i ? ", " : "", el("code", {}, literal(v))])));
    if (source.propertyNames && source.propertyNames.maxLength !== undefined)
      found.push(el("span", { class: "limit" }, "keys ≤ ", el("code", {}, source.propertyNames.maxLength), " chars"));
    if (source.additionalProperties && typeof source.additionalProperties === "object") {
      const values = source.additionalProperties;
      found.push(el("span", { class: "limit" }, "values: ", typeLabel(values), limits(values)));
    }
  }
  return found;
}

function resolve(schema, seen) {
  if (!schema || !schema.$ref) return schema;
  const name = refName(schema.$ref);
  if (seen.has(name)) return null; // a cycle: the link in the row is enough
  seen.add(name);
  return resolve(SCHEMAS[name], seen);
}

// An object's fields as nested rows, following $ref (each schema once per branch, so cycles end).
function schemaTree(schema, depth = 0, seen = new Set()) {
  const branch = new Set(seen);
  const resolved = resolve(schema, branch);
  if (!resolved || depth > 6) return null;
  const objectLike = (resolved.anyOf || []).map((v) => resolve(v, branch)).find((v) => v && v.properties);
  const target = resolved.properties ? resolved : objectLike;
  if (!target) return null;
  const required = new Set(target.required || []);
  const rows = Object.entries(target.properties).map(([name, field]) =>
    el("li", { class: "field" },
      el("div", { class: "field-head" },
        el("code", { class: "name" }, name),
        typeLabel(field),
        required.has(name) ? el("span", { class: "req" }, "required") : el("span", { class: "opt" }, "optional"),
        limits(field)),
      prose(field.description, "div", "desc"),
      schemaTree(field.items || field, depth + 1, branch)));
  return el("ul", { class: "tree" }, rows);
}

function schemaBlock(schema) {
  const resolved = resolve(schema, new Set()) || schema;
  return el("div", { class: "schema" },
    el("div", { class: "schema-head" }, typeLabel(schema), limits(resolved)),
    prose(resolved && resolved.description, "div", "desc"),
    schemaTree(schema));
}

// --- operations -----------------------------------------------------------------------------------

function parameterTable(parameters) {
  if (!parameters || !parameters.length) return null;
  return el("table", { class: "params" },
    el("thead", {}, el("tr", {}, ["Name", "In", "Type", "Limits"].map((h) => el("th", {}, h)))),
    el("tbody", {}, parameters.map((p) =>
      el("tr", {},
        el("td", {}, el("code", { class: "name" }, p.name), p.required ? el("span", { class: "req" }, "required") : null),
        el("td", { class: "muted" }, p.in),
        el("td", {}, typeLabel(p.schema)),
        el("td", {}, limits(p.schema), prose(p.description, "div", "desc"))))));
}

function contentBlocks(content) {
  return Object.entries(content || {}).map(([media, body]) =>
    el("div", { class: "media" }, el("span", { class: "media-type" }, media), schemaBlock(body.schema)));
}

function responses(operation) {
  return Object.entries(operation.responses || {}).map(([status, answer]) =>
    el("div", { class: "response" },
      el("div", { class: "response-head" },
        el("span", { class: "status s" + status[0] }, status === "default" ? "4xx/5xx" : status),
        prose(answer.description, "span", "desc")),
      contentBlocks(answer.content),
      answer.links ? el("div", { class: "links" }, "Its ids feed: ",
        Object.values(answer.links).map((l, i) => [i ? ", " : "", el("a", { href: "#op-" + slug(l.operationId) }, l.operationId)])) : null));
}

function operationCard(doc, path, method, operation) {
  const open = Array.isArray(operation.security) && operation.security.length === 0;
  const body = operation.requestBody;
  const card = el("details", { class: "op", id: "op-" + slug(operation.operationId || method + path) },
    el("summary", {},
      el("span", { class: "method m-" + method }, method.toUpperCase()),
      el("code", { class: "path" }, path),
      prose(operation.summary || "", "span", "summary"),
      el("span", { class: open ? "auth open" : "auth" }, open ? "no key" : "key")),
    el("div", { class: "op-body" },
      prose(operation.description),
      operation.parameters && operation.parameters.length ? [el("h4", {}, "Parameters"), parameterTable(operation.parameters)] : null,
      body ? [el("h4", {}, "Request body"), prose(body.description, "p", "desc"), contentBlocks(body.content)] : null,
      el("h4", {}, "Responses"),
      responses(operation)));
  card.dataset.search = [method, path, operation.summary, operation.operationId].join(" ").toLowerCase();
  card.dataset.path = path;
  return card;
}

// --- page -----------------------------------------------------------------------------------------

function dialectOf(doc, path) {
  const dialect = (doc["x-dialects"] || []).find((d) => path === d.prefix || path.startsWith(d.prefix + "/"));
  return dialect ? dialect.name : null;
}

function render(doc) {
  SCHEMAS = (doc.components && doc.components.schemas) || {};
  const main = document.getElementById("main");
  const nav = document.getElementById("nav");
  document.getElementById("title").textContent = doc.info.title;
  document.getElementById("version").textContent = "v" + doc.info.version;
  document.title = doc.info.title + " API";

  const byTag = new Map((doc.tags || []).map((t) => [t.name, { tag: t, ops: [] }]));
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of METHODS.filter((m) => item[m])) {
      const operation = item[method];
      const name = (operation.tags || ["other"])[0];
      if (!byTag.has(name)) byTag.set(name, { tag: { name }, ops: [] });
      byTag.get(name).ops.push({ path, method, operation, dialect: dialectOf(doc, path) });
    }
  }

  const sections = [];
  const navItems = [];
  for (const { tag, ops } of byTag.values()) {
    const anchor = "tag-" + slug(tag.name);
    const cards = ops.map(({ path, method, operation, dialect }) => {
      const card = operationCard(doc, path, method, operation);
      if (dialect) card.dataset.dialect = dialect;
      return card;
    });
    sections.push(el("section", { class: "tag", id: anchor }, el("h2", {}, tag.name), prose(tag.description), cards));
    navItems.push(el("li", {}, el("a", { href: "#" + anchor }, tag.name)));
  }

  const schemas = (doc.components && doc.components.schemas) || {};
  const schemaSections = Object.entries(schemas).map(([name, schema]) =>
    el("section", { class: "component", id: "schema-" + slug(name) }, el("h3", {}, name), schemaBlock(schema)));
  navItems.push(el("li", {}, el("a", { href: "#schemas" }, "schemas")));

  const intro = el("section", { class: "intro" },
    el("h1", {}, doc.info.title, " ", el("span", { class: "muted" }, "API")),
    prose(doc.info.description),
    schemas.Error ? el("div", { class: "envelope" },
      el("h3", {}, "Errors"),
      prose("Every answer that is not 2xx is the same JSON envelope, whatever the route:"),
      el("pre", {}, JSON.stringify({ error: { message: "No batch found with id 'batch_…'.", type: "invalid_request_error", param: null, code: null } }, null, 2)),
      el("a", { href: "#schema-error" }, "The Error schema")) : null);

  main.replaceChildren(intro, ...sections,
    el("section", { class: "tag", id: "schemas" }, el("h2", {}, "schemas"), schemaSections));
  nav.replaceChildren(el("ul", {}, navItems));
  setupControls(doc);
}

function setupControls(doc) {
  const dialects = doc["x-dialects"] || [];
  const group = document.getElementById("dialects");
  const filter = document.getElementById("filter");
  let current = dialects.length ? dialects[dialects.length - 1].name : null;
  const stored = sessionStorage.getItem("batchgate-docs-dialect");
  if (dialects.some((d) => d.name === stored)) current = stored;

  const apply = () => {
    const words = filter.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    for (const card of document.querySelectorAll(".op")) {
      const inDialect = !card.dataset.dialect || card.dataset.dialect === current;
      const matches = words.every((w) => card.dataset.search.includes(w));
      card.hidden = !(inDialect && matches);
    }
    for (const section of document.querySelectorAll("section.tag")) {
      const cards = section.querySelectorAll(".op");
      section.hidden = cards.length > 0 && [...cards].every((c) => c.hidden);
    }
    for (const button of group.querySelectorAll("button")) button.setAttribute("aria-pressed", String(button.value === current));
  };

  group.replaceChildren(...dialects.map((d) => {
    const button = el("button", { type: "button", value: d.name, title: "Paths under " + d.prefix }, d.title || d.name, el("code", {}, d.prefix));
    button.addEventListener("click", () => {
      current = d.name;
      sessionStorage.setItem("batchgate-docs-dialect", current);
      apply();
    });
    return button;
  }));
  filter.addEventListener("input", apply);
  apply();
  if (location.hash) {
    const target = document.getElementById(location.hash.slice(1));
    if (target && target.tagName === "DETAILS") target.open = true;
    if (target) target.scrollIntoView();
  }
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[href^='#op-']");
  const target = link && document.getElementById(link.getAttribute("href").slice(1));
  if (target && target.tagName === "DETAILS") target.open = true;
});

fetch("openapi.json", { headers: { Accept: "application/json" } })
  .then((answer) => {
    if (!answer.ok) throw new Error("/openapi.json answered " + answer.status);
    return answer.json();
  })
  .then(render)
  .catch((error) => {
    document.getElementById("main").replaceChildren(el("p", { class: "failure" }, "Could not load the API document: " + error.message));
  });
