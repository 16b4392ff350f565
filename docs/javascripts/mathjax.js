// MathJax for the docstrings' maths: docs/hooks.py wraps :math:`...` in \( \) and `.. math::` blocks in
// \[ \], inside elements of class "arithmatex"; nothing else on a page is typeset.
window.MathJax = {
  tex: {inlineMath: [["\\(", "\\)"]], displayMath: [["\\[", "\\]"]], processEscapes: true, processEnvironments: true},
  options: {ignoreHtmlClass: ".*|", processHtmlClass: "arithmatex"}
};

document$.subscribe(() => {  // Material's instant navigation: typeset each page it loads
  if (window.MathJax && MathJax.typesetPromise) {
    MathJax.startup.output.clearCache();
    MathJax.typesetClear();
    MathJax.texReset();
    MathJax.typesetPromise();
  }
});
