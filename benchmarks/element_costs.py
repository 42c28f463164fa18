"""What each kind of Streamlit element adds to a page's warm reload in Chromium on this machine (issue #23).

    python3 benchmarks/element_costs.py            # writes benchmarks/measured/pages/element-costs.json

Small Streamlit apps, each one heading and one line plus one kind of element, served and timed like the dashboard's
pages (``page_times.reload``: until the script run has ended and the page has stopped changing): the floor (nothing
else), one and four plotly charts, four Vega-Lite line charts, two data frames, two static tables, twelve widgets,
and an image grid. The difference to the floor is what the element costs every reload, whatever the page computes;
it is what decides how fast a page can answer, and why the dashboard draws only the open tab of a page.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from benchmarks.page_times import (
    CHROMIUM,
    CHROMIUM_ARGS,
    INIT_SCRIPT,
    LAST_SPLIT,
    VIEWPORT,
    goto,
    reload,
    write_result,
)
from benchmarks.serve import start_streamlit, stop_server, wait_healthy

HEAD = 'import streamlit as st\nst.set_page_config(layout="wide")\nst.title("Probe")\nst.write("One line.")\n'
FIGURE = ('import plotly.graph_objects as go\n\n'
          'def fig(i):\n'
          '    return go.Figure(go.Scatter(x=list(range(50)), y=[(j * i) % 7 for j in range(50)], mode="lines"))\n')
ROWS = '[{"run": f"run-{j}", "accuracy": j / 20, "seed": j} for j in range(20)]'
APPS = {
    "floor": HEAD,
    "plotly chart x1": HEAD + FIGURE + 'st.plotly_chart(fig(1), key="p1")\n',
    "plotly chart x4": HEAD + FIGURE + "".join(f'st.plotly_chart(fig({i}), key="p{i}")\n' for i in range(4)),
    "vega-lite chart x4": HEAD + "".join(f'st.line_chart({{"y": [(j * {i}) % 7 for j in range(50)]}})\n'
                                         for i in range(4)),
    "dataframe x2 (20 rows)": HEAD + "".join(f'st.dataframe({ROWS}, key="d{i}")\n' for i in range(2)),
    "table x2 (20 rows)": HEAD + "".join(f"st.table({ROWS})\n" for _ in range(2)),
    "widgets x12": HEAD + "".join(f'st.slider("s{i}", 0, 10, 5, key="s{i}")\n' for i in range(6))
                   + "".join(f'st.selectbox("b{i}", ["x", "y"], key="b{i}")\n' for i in range(6)),
    "image grid (one 8x3 strip)": HEAD + "import numpy as np\n"
                                  "st.image(np.random.default_rng(0).integers(0, 255, (8 * 96, 3 * 96, 3), "
                                  "dtype=np.uint8))\n",
}


def measure(browser, app: Path, reloads: int) -> dict:
    url, proc = start_streamlit(app, app.parent)
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(INIT_SCRIPT)
    page = context.new_page()
    try:
        wait_healthy(url, proc)
        goto(page, url, "Probe")
        goto(page, url, "Probe")
        drawn, ended = [], []
        for _ in range(reloads):
            drawn.append(reload(page, "Probe"))
            ended.append(LAST_SPLIT["run_ended_s"])
        return {"reload_s": drawn, "until_run_ended_s": ended}
    finally:
        context.close()
        stop_server(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reloads", type=int, default=7, help="warm reloads per app (median)")
    parser.add_argument("--rounds", type=int, default=2, help="passes over all apps (a burst of load hits all alike)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "measured" / "pages" / "element-costs.json")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    samples: dict[str, list[float]] = {name: [] for name in APPS}
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        for _ in range(args.rounds):
            for name, code in APPS.items():
                app = Path(folder) / f"{name.split()[0].replace('-', '_')}_{len(samples[name])}.py"
                app.write_text(code)
                samples[name] += measure(browser, app, args.reloads)["reload_s"]
        browser.close()
    medians = {name: statistics.median(values) for name, values in samples.items()}
    floor = medians["floor"]
    print(f"{'page':30} {'reload (median)':>16} {'over the floor':>15}")
    for name, value in medians.items():
        print(f"{name:30} {value:15.2f}s {value - floor:+14.2f}s")
    write_result(args.out, {"settings": {"reloads": args.reloads, "rounds": args.rounds, "viewport": VIEWPORT},
                            "median_reload_s": medians,
                            "over_floor_s": {k: v - floor for k, v in medians.items()}, "samples": samples})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
