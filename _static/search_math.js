/* Search snippets with math. Sphinx cuts each snippet from a page's text, where math is still TeX source such as
   \(n \log_2 K\): MathJax typesets it inside each page, and the search page loads no MathJax. So each snippet that
   holds math is typeset as it appears, with the book's own MathJax copy (loaded on first use), after removing the
   pieces of math that the 240-character cut left without a delimiter. */
(function () {
  var DELIMITER = /\\[()[\]]/g, PAIR = { "\\(": "\\)", "\\[": "\\]" };

  function paired(text) {  // the text without the math the cut split: a tail at its start, a head at its end
    var tokens = [], opener = null, match, start = 0, end = text.length;
    while ((match = DELIMITER.exec(text)) !== null) tokens.push({ at: match.index, token: match[0] });
    tokens.forEach(function (t) {
      if (PAIR[t.token]) opener = t;
      else if (opener && PAIR[opener.token] === t.token) opener = null;
      else if (!opener) start = t.at + 2;  // a closer without its opener: the snippet began inside math
    });
    if (opener) end = opener.at;  // an opener without its closer: the snippet ended inside math
    return (start ? "\u2026 " : "") + text.slice(start, end) + (end < text.length ? " \u2026" : "");
  }

  var loading = null;
  function mathjax() {  // the book's MathJax, loaded once, typesetting only what it is given
    if (!loading) loading = new Promise(function (resolve) {
      if (window.MathJax && window.MathJax.typesetPromise) return resolve(window.MathJax);
      window.MathJax = { startup: { typeset: false } };
      var script = document.createElement("script");
      script.src = (document.documentElement.dataset.content_root || "./") + "_static/mathjax/tex-chtml.js";
      script.onload = function () { window.MathJax.startup.promise.then(function () { resolve(window.MathJax); }); };
      document.head.appendChild(script);
    });
    return loading;
  }

  function typeset(snippet) {
    if (snippet.dataset.math || !DELIMITER.test(snippet.textContent)) return;
    DELIMITER.lastIndex = 0;
    snippet.dataset.math = "typeset";
    snippet.textContent = paired(snippet.textContent);
    mathjax().then(function (mj) { return mj.typesetPromise([snippet]); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var results = document.getElementById("search-results");
    if (!results || !window.MutationObserver) return;
    new MutationObserver(function (records) {
      records.forEach(function (record) {
        record.addedNodes.forEach(function (node) {
          if (node.nodeType !== 1) return;
          (node.matches("p.context") ? [node] : node.querySelectorAll("p.context")).forEach(typeset);
        });
      });
    }).observe(results, { childList: true, subtree: true });
  });
})();
