/* OneAI chat widget. <script src="<API>/widget.js" data-chatbot="<public_id>" async></script>
 * Plain JavaScript, no dependencies. Everything lives in an open shadow root on a host element whose
 * inline styles reset what the page's CSS could change; model and settings text is only ever set as
 * textContent (never HTML), so markup in a reply, a greeting or a question stays inert text. */
(function () {
  "use strict";

  // The UI message stream (SSE, the parts of /chat/stream): calls onPart for each JSON part, in order.
  async function readStream(body, onPart) {
    var reader = body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    for (;;) {
      var step = await reader.read();
      buffer += step.done ? decoder.decode() : decoder.decode(step.value, { stream: true });
      var events = buffer.split(/\r?\n\r?\n/);
      buffer = step.done ? "" : events.pop();
      for (var i = 0; i < events.length; i++) {
        var data = events[i].split(/\r?\n/).filter(function (line) { return line.indexOf("data:") === 0; })
          .map(function (line) { return line.slice(5).replace(/^ /, ""); }).join("\n");
        if (!data || data === "[DONE]") continue;
        var part;
        try { part = JSON.parse(data); } catch (e) { continue; }
        if (part && typeof part.type === "string") onPart(part);
      }
      if (step.done) return;
    }
  }

  // What a reply becomes as its parts arrive: its text, its sources, an error, the conversation id.
  function replyState() {
    return { text: "", sources: [], error: null, conversationId: null, finished: false };
  }
  function applyPart(state, part) {
    if (part.type === "text-delta" && typeof part.delta === "string") state.text += part.delta;
    else if (part.type === "source-document") {
      var meta = (part.providerMetadata && part.providerMetadata.oneai) || {};
      state.sources.push({ title: String(part.title || part.filename || "source"), page: meta.page });
    } else if (part.type === "error") state.error = String(part.errorText || "error");
    else if (part.type === "data-conversation" && part.data) state.conversationId = part.data.id || part.data.conversation_id || null;
    else if (part.type === "finish") state.finished = true;
    return state;
  }

  if (typeof module === "object" && module.exports) module.exports = { readStream: readStream, replyState: replyState, applyPart: applyPart };
  if (typeof document === "undefined") return;

  var script = document.currentScript || document.querySelector("script[data-chatbot]");
  if (!script || !script.src) return;
  var publicId = script.getAttribute("data-chatbot") || "";
  var api = script.src.replace(/\/widget\.js(?:[?#].*)?$/, "");
  var base = api + "/public/chatbots/" + encodeURIComponent(publicId);
  var keyPrefix = "oneai-widget:" + publicId + ":";
  var UNAVAILABLE = "The assistant is unavailable right now.";
  var memory = {};

  function stored(name, value) {
    try {
      if (value === undefined) return window.localStorage.getItem(keyPrefix + name);
      if (value === null) window.localStorage.removeItem(keyPrefix + name);
      else window.localStorage.setItem(keyPrefix + name, value);
    } catch (e) {
      if (value === undefined) return memory[name] || null;
      memory[name] = value;
    }
    return value;
  }
  function visitorId() {
    var id = stored("visitor");
    if (!id || !/^[A-Za-z0-9_-]{16,64}$/.test(id)) {
      // 128 random bits as hex (getRandomValues works on plain-http pages too, unlike randomUUID).
      var bytes = crypto.getRandomValues(new Uint8Array(16));
      id = Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
      stored("visitor", id);
    }
    return id;
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var name in attrs || {}) node.setAttribute(name, attrs[name]);
    if (text != null) node.textContent = text;
    return node;
  }

  var CSS = ":host{all:initial}*{box-sizing:border-box;margin:0;padding:0;font:inherit;color:inherit;letter-spacing:normal;text-transform:none;text-align:left;float:none;border:0;background:none;box-shadow:none;text-shadow:none;max-width:none;min-width:0;line-height:inherit}" +
    ".w{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#111827}" +
    ".l{position:fixed;bottom:20px;width:56px;height:56px;border-radius:50%;background:var(--c);color:#fff;cursor:pointer;display:flex;align-items:center;justify-content:center;box-shadow:0 4px 14px rgba(0,0,0,.25);z-index:1}" +
    ".l svg{width:26px;height:26px;fill:#fff}.right{right:20px}.left{left:20px}" +
    ".p{position:fixed;bottom:88px;width:370px;height:560px;max-height:calc(100vh - 108px);background:#fff;border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.25);display:flex;flex-direction:column;overflow:hidden}" +
    ".p[hidden]{display:none}" +
    ".h{display:flex;align-items:center;gap:8px;padding:12px 14px;background:var(--c);color:#fff}" +
    ".h img{width:28px;height:28px;border-radius:50%;object-fit:cover;background:#fff}.h h2{flex:1;font-size:15px;font-weight:600}" +
    ".x{color:#fff;font-size:22px;line-height:1;cursor:pointer;padding:2px 6px;border-radius:4px}" +
    ".m{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px;background:#f9fafb}" +
    ".b{padding:8px 11px;border-radius:10px;max-width:85%;white-space:pre-wrap;overflow-wrap:anywhere}" +
    ".a{background:#fff;border:1px solid #e5e7eb;align-self:flex-start}.u{background:var(--c);color:#fff;align-self:flex-end}" +
    ".n{align-self:center;font-size:13px;color:#6b7280;text-align:center}" +
    ".s{margin-top:6px;padding-top:6px;border-top:1px solid #e5e7eb;font-size:12px;color:#4b5563}.s li{list-style:none}" +
    ".q{display:flex;flex-wrap:wrap;gap:6px}.q button{border:1px solid var(--c);color:var(--c);background:#fff;border-radius:14px;padding:4px 10px;cursor:pointer;font-size:13px}" +
    ".r{display:flex;align-items:center;gap:4px;padding:6px 12px;border-top:1px solid #e5e7eb;font-size:13px}.r[hidden]{display:none}" +
    ".r button{width:28px;height:28px;border:1px solid #d1d5db;border-radius:6px;cursor:pointer;background:#fff;text-align:center}.r button[aria-pressed=true]{background:var(--c);color:#fff}" +
    ".f{display:flex;gap:6px;padding:10px;border-top:1px solid #e5e7eb;background:#fff}" +
    ".f textarea{flex:1;resize:none;height:40px;border:1px solid #d1d5db;border-radius:8px;padding:9px;background:#fff}" +
    ".f button{background:var(--c);color:#fff;border-radius:8px;padding:0 14px;cursor:pointer;font-weight:600}" +
    "button:focus-visible,textarea:focus-visible{outline:2px solid var(--c);outline-offset:2px}" +
    ".v{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}" +
    "@media (max-width:480px){.p{inset:0;width:100vw;height:100vh;height:100dvh;max-height:none;border-radius:0;z-index:2}}";

  function mount(settings, unavailable) {
    var host = el("oneai-chat-widget");
    // The page's rules cannot reach inside the shadow root, and these inline !important ones beat its
    // rules on the host element itself (`* {...}` included).
    host.style.cssText = "all:initial!important;position:fixed!important;display:block!important;z-index:2147483647!important;inset:auto!important;width:0!important;height:0!important;overflow:visible!important";
    var root = host.attachShadow({ mode: "open" });
    var wrap = el("div", { "class": "w", style: "--c:" + settings.color });
    var side = settings.position === "bottom-left" ? "left" : "right";
    wrap.appendChild(el("style", {}, CSS));

    var launcher = el("button", { "class": "l " + side, type: "button", "aria-label": "Open chat: " + settings.title, "aria-expanded": "false", "aria-controls": "oneai-panel", part: "launcher" });
    launcher.innerHTML = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 4h16v12H7l-3 3z"/></svg>';
    var panel = el("div", { "class": "p " + side, id: "oneai-panel", role: "dialog", "aria-label": settings.title, hidden: "" });
    var head = el("div", { "class": "h" });
    if (settings.avatar_url) head.appendChild(el("img", { src: settings.avatar_url, alt: "", referrerpolicy: "no-referrer" }));
    head.appendChild(el("h2", {}, settings.title));
    var close = el("button", { "class": "x", type: "button", "aria-label": "Close chat" }, "\u00d7");
    head.appendChild(close);
    var log = el("div", { "class": "m", role: "log", "aria-live": "polite", "aria-label": "Conversation" });
    var rating = el("div", { "class": "r", hidden: "" });
    rating.appendChild(el("span", { id: "oneai-rate" }, "Rate this conversation:"));
    var group = el("div", { role: "group", "aria-labelledby": "oneai-rate" });
    for (var score = 1; score <= 5; score++) group.appendChild(el("button", { type: "button", "aria-pressed": "false", "aria-label": score + " of 5", "data-score": String(score) }, String(score)));
    rating.appendChild(group);
    var form = el("form", { "class": "f" });
    var input = el("textarea", { "aria-label": "Your message", placeholder: "Type your question\u2026", rows: "1", maxlength: "4000" });
    var send = el("button", { type: "submit" }, "Send");
    form.appendChild(input);
    form.appendChild(send);
    panel.appendChild(head);
    panel.appendChild(log);
    panel.appendChild(rating);
    panel.appendChild(form);
    wrap.appendChild(launcher);
    wrap.appendChild(panel);
    root.appendChild(wrap);
    document.body.appendChild(host);

    var session = null;
    var busy = false;
    var started = false;
    var chips = null;

    function bubble(kind, text) {
      var node = el("div", { "class": "b " + kind }, text);
      log.appendChild(node);
      log.scrollTop = log.scrollHeight;
      return node;
    }
    function note(text) { return bubble("n", text); }
    function showSources(node, sources) {
      if (!sources.length) return;
      var list = el("ul", { "class": "s", "aria-label": "Sources" });
      sources.forEach(function (source) { list.appendChild(el("li", {}, source.title)); });
      node.appendChild(list);
    }
    // What a refused request tells the visitor: a wait in words (429), or "unavailable" for what only the
    // chatbot's owner can fix (credits 402, disabled 403, their provider key 424) or the model failing (5xx).
    // The chatbot's messages of the day used up is told as such whatever the hour (the body's bucket): near
    // midnight UTC its Retry-After is minutes, and "wait 40 minutes" would be a wrong promise at 23:20.
    function refusal(response) {
      var status = response.status;
      if (status !== 429) {
        return Promise.resolve(status === 402 || status === 403 || status === 424 || status >= 500 ? UNAVAILABLE : "Something went wrong. Please try again.");
      }
      var wait = parseInt(response.headers.get("Retry-After") || "", 10);
      return response.json().then(function (body) { return body.error.details.bucket; }).catch(function () { return null; }).then(function (bucket) {
        if (bucket === "widget_chatbot_day" || wait > 3600) return "The assistant has answered all it can for today. Please come back later.";
        if (!(wait > 0)) return "Please wait a moment before sending another message.";
        var minutes = wait > 90, count = minutes ? Math.ceil(wait / 60) : wait;
        return "Please wait " + count + (minutes ? " minute" : " second") + (count === 1 ? "" : "s") + " before sending another message.";
      });
    }

    function openSession(force) {
      if (session && !force && session.expires > Date.now() + 30000) return Promise.resolve(session);
      var body = { visitor_id: visitorId(), page_url: location.href.slice(0, 2048), locale: navigator.language || undefined };
      if (document.referrer) body.referrer = document.referrer.slice(0, 2048);
      var conversation = stored("conversation");
      if (conversation) body.conversation_id = conversation;
      return fetch(base + "/sessions", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), credentials: "omit" })
        .then(function (response) {
          if (!response.ok) throw response;
          return response.json();
        })
        .then(function (answer) {
          session = { token: answer.session_token, expires: Date.parse(answer.expires_at), conversation: answer.conversation_id || null };
          stored("conversation", session.conversation);
          return session;
        });
    }
    function authorized(path, init, retried) {
      return openSession(false).then(function (current) {
        init = init || {};
        init.credentials = "omit";
        init.headers = Object.assign({}, init.headers || {}, { authorization: "Bearer " + current.token });
        return fetch(base + path, init).then(function (response) {
          if (response.status === 401 && !retried) { session = null; return authorized(path, init, true); }
          return response;
        });
      });
    }

    function greet() {
      if (settings.greeting) bubble("a", settings.greeting);
      if (settings.suggested_questions.length) {
        chips = el("div", { "class": "q", role: "group", "aria-label": "Suggested questions" });
        settings.suggested_questions.forEach(function (question) {
          var chip = el("button", { type: "button" }, question);
          chip.addEventListener("click", function () { ask(question); });
          chips.appendChild(chip);
        });
        log.appendChild(chips);
      }
    }
    function resume() {
      if (unavailable) { note(UNAVAILABLE); return; }
      openSession(false).then(function (current) {
        if (!current.conversation) return;
        return authorized("/conversations/" + current.conversation + "/messages").then(function (response) {
          if (!response.ok) return;
          return response.json().then(function (conversation) {
            conversation.messages.forEach(function (message) {
              var node = bubble(message.role === "user" ? "u" : "a", message.content);
              showSources(node, (message.sources || []).map(function (s) { return { title: s.filename + (s.page ? " p. " + s.page : "") }; }));
            });
            if (conversation.messages.length) { rating.hidden = false; if (chips) chips.remove(); }
            if (conversation.rating) press(conversation.rating);
          });
        });
      }).catch(function (response) {
        if (response && response.status) return refusal(response).then(note);
      });
    }

    function ask(text) {
      text = text.trim();
      if (!text || busy) return;
      if (unavailable) { note(UNAVAILABLE); return; }
      busy = true;
      send.disabled = true;
      if (chips) { chips.remove(); chips = null; }  // offered before the first question only
      bubble("u", text);
      var node = bubble("a", "");
      node.setAttribute("aria-busy", "true");
      log.setAttribute("aria-busy", "true");
      var state = replyState();
      var body = { content: text };
      if (session && session.conversation) body.conversation_id = session.conversation;
      authorized("/chat", { method: "POST", headers: { "content-type": "application/json", accept: "text/event-stream" }, body: JSON.stringify(body) })
        .then(function (response) {
          if (!response.ok || !response.body) { node.remove(); return refusal(response).then(note); }
          return readStream(response.body, function (part) {
            applyPart(state, part);
            node.textContent = state.text;
            log.scrollTop = log.scrollHeight;
          }).then(function () {
            if (state.error && !state.text) { node.remove(); note("Something went wrong. Please try again."); return; }
            showSources(node, state.sources);
            if (state.conversationId && session) { session.conversation = state.conversationId; stored("conversation", state.conversationId); }
            rating.hidden = false;
          });
        })
        .catch(function (response) { node.remove(); return response && response.status ? refusal(response).then(note) : note("Something went wrong. Please try again."); })
        .then(function () {
          busy = false;
          send.disabled = false;
          node.removeAttribute("aria-busy");
          log.setAttribute("aria-busy", "false");
        });
    }

    function press(score) {
      group.querySelectorAll("button").forEach(function (button) { button.setAttribute("aria-pressed", String(button.getAttribute("data-score") === String(score))); });
    }
    group.addEventListener("click", function (event) {
      var score = event.target && event.target.getAttribute && event.target.getAttribute("data-score");
      if (!score || !session || !session.conversation) return;
      press(score);
      authorized("/conversations/" + session.conversation + "/rating", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ score: Number(score) }) })
        .then(function (response) { if (response.ok) note("Thank you for your rating."); });
    });

    function setOpen(open) {
      panel.hidden = !open;
      launcher.setAttribute("aria-expanded", String(open));
      launcher.setAttribute("aria-label", (open ? "Close chat: " : "Open chat: ") + settings.title);
      if (open) {
        if (!started) { started = true; greet(); resume(); }
        input.focus();
      } else launcher.focus();
    }
    launcher.addEventListener("click", function () { setOpen(panel.hidden); });
    close.addEventListener("click", function () { setOpen(false); });
    panel.addEventListener("keydown", function (event) { if (event.key === "Escape") { event.stopPropagation(); setOpen(false); } });
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); form.requestSubmit ? form.requestSubmit() : submit(event); }
    });
    function submit(event) {
      event.preventDefault();
      var text = input.value;
      input.value = "";
      ask(text);
    }
    form.addEventListener("submit", submit);
  }

  function start() {
    fetch(base, { credentials: "omit" }).then(function (response) {
      if (response.ok) return response.json().then(function (settings) { mount(settings, false); });
      // A chatbot disabled, or its workspace suspended: a launcher that says so. Anything else (unknown,
      // an origin it does not allow, which the browser refuses to show us anyway): nothing at all.
      if (response.status === 403) mount({ title: "Chat", greeting: null, color: "#6b7280", position: "bottom-right", avatar_url: null, suggested_questions: [] }, true);
    }).catch(function () {});
  }
  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
})();
