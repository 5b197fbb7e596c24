// Clicking a state of the drawn state machine shows its input and output; an endpoint's "invoke…"
// button fills the invoke box. Plain DOM code, no framework (htmx does the polling and forms).
document.addEventListener("click", function (event) {
  var state = event.target.closest && event.target.closest("g.state");
  var graph = document.getElementById("graph");
  if (state && graph) {
    var query = new URLSearchParams({ execution: graph.dataset.execution, state: state.dataset.state });
    htmx.ajax("GET", "/fragments/state?" + query.toString(), { target: "#state-detail" });
    return;
  }
  var button = event.target.closest && event.target.closest("button.use-endpoint");
  if (button) {
    document.getElementById("invoke-endpoint").value = button.dataset.endpoint;
  }
});
