// Runs a task now and again every `interval` ms after it settles, skipping while the tab is hidden.
// The task returns "stop" to end the polling (a batch that reached a terminal status).

export function poll(task, interval) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    let outcome = null;
    if (!document.hidden) {
      try {
        outcome = await task();
      } catch (error) {
        console.error(error);
      }
    }
    if (!stopped && outcome !== "stop") timer = setTimeout(tick, interval);
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
