"""Draws the `anteroom-bench waiting` report as an SVG: per waiting person,
what the line costs in memory, and per poll, what it costs in time, against
the line's size (log scale). No plotting library: the figure is a few lines.

    python3 bench/plot_waiting.py waiting.json waiting.svg
"""
import json
import math
import sys

WIDTH, HEIGHT, PANEL_H = 760, 590, 200
LEFT, TOP = 90, 50
PANEL_W = WIDTH - LEFT - 40
COLOURS = ["#1f6feb", "#d9480f", "#2b8a3e"]


def panel(out, top, title, unit, sizes, series):
    """One panel: a line per (name, values) in `series`, x on a log scale."""
    values = [v for _, vs in series for v in vs if v is not None]
    top_value = max(values) * 1.15 if values else 1
    xs = [math.log10(s) for s in sizes]
    x_min, x_max = min(xs) - 0.15, max(xs) + 0.15

    def at(size_log, value):
        x = LEFT + (size_log - x_min) / (x_max - x_min) * PANEL_W
        y = top + PANEL_H - value / top_value * PANEL_H
        return x, y

    out.append(f'<text x="{LEFT}" y="{top - 14}" font-weight="bold">{title}</text>')
    out.append(f'<rect x="{LEFT}" y="{top}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#888"/>')
    for i in range(5):
        value = top_value * i / 4
        _, y = at(x_min, value)
        out.append(f'<line x1="{LEFT}" x2="{LEFT + PANEL_W}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{value:,.0f}</text>')
    out.append(f'<text x="{LEFT - 70}" y="{top + PANEL_H / 2}" transform="rotate(-90 {LEFT - 70} {top + PANEL_H / 2})" text-anchor="middle">{unit}</text>')
    for size, x_log in zip(sizes, xs):
        x, _ = at(x_log, 0)
        out.append(f'<text x="{x:.1f}" y="{top + PANEL_H + 18}" text-anchor="middle">{size:,}</text>')
    for n, (name, vs) in enumerate(series):
        colour = COLOURS[n % len(COLOURS)]
        points = [at(x, v) for x, v in zip(xs, vs) if v is not None]
        if not points:
            continue
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in points:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}"/>')
        legend_y = top + 16 + 16 * n
        legend_x = LEFT + PANEL_W - 220
        out.append(f'<line x1="{legend_x}" x2="{legend_x + 20}" y1="{legend_y - 4}" y2="{legend_y - 4}" stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{legend_x + 26}" y="{legend_y}">{name}</text>')


def main(source, target):
    report = json.load(open(source))
    sizes = [s["waiting"] for s in report["sizes"]]
    field = lambda name: [s.get(name) for s in report["sizes"]]
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
    ]
    panel(out, TOP, "Memory per waiting person", "bytes", sizes, [
        ("Redis (the event's keys)", field("redis_bytes_per_person")),
        ("RabbitMQ (the line's queue)", field("rabbitmq_bytes_per_person")),
        ("the service (RSS)", field("service_rss_bytes_per_person")),
    ])
    panel(out, TOP + PANEL_H + 80, "Cost of a poll", "µs / ms", sizes, [
        ("service CPU per poll (µs)", field("service_cpu_micros_per_poll")),
        ("poll p99 (ms)", [s["poll"]["p99_ms"] if s.get("poll") else None for s in report["sizes"]]),
    ])
    out.append(f'<text x="{LEFT + PANEL_W / 2}" y="{HEIGHT - 10}" text-anchor="middle">people waiting at once (log scale)</text>')
    out.append("</svg>")
    with open(target, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
