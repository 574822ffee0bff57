"""One row per host from what Ansible reported for it (fleet.py), and the fleet table.

A row's status is the first thing that went wrong on that host, in the order the steps run:
unreachable / login refused (ssh), no Python or profile mismatch (probe), copy failed
(nothing left behind), self-test timed out or failed, or ok.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, cast

from resnet_deploy.ship.deploy import last_json_line
from resnet_deploy.ship.inventory import FleetHost
from resnet_deploy.portable.constants import EXIT_PROFILE
from resnet_deploy.portable.metrics import breach_text
from resnet_deploy.store.record import Record

PUBLISH_TASKS = ("prepare", "copy", "copy key", "unpack", "swap")
# what ssh itself prints on stderr around a step's output (a new host key; several inventory hosts on one
# address sharing a control socket: "ControlSocket ... already exists, disabling multiplexing")
SSH_NOTES = ("Warning: Permanently added", "ControlSocket ")


def _lines(res: dict) -> list[str]:
    text = "\n".join(str(res.get(k) or "") for k in ("stdout", "stderr"))
    return [
        ln.strip()
        for ln in text.replace("\r", "").splitlines()  # ssh's own notes are not the step's
        if ln.strip() and not ln.startswith(SSH_NOTES) and "disabling multiplexing" not in ln
    ]


def json_line(res: dict) -> dict | None:
    """The last JSON object line a raw task printed (raw tasks run on a tty: stderr mixes in)."""
    return last_json_line("\n".join(_lines(res)))


def said(res: dict) -> str:
    """The one line that explains a failed step: its last non-JSON output line, else Ansible's msg."""
    lines = [ln for ln in _lines(res) if not ln.startswith("{") and "closed." not in ln]
    msg = str(res.get("msg") or "").strip().splitlines()
    return (lines[-1] if lines else msg[-1] if msg else "no output")[:300]


def _connection(res: dict) -> tuple[str, str]:
    msg = " ".join(str(res.get("msg") or "").split())
    for noise in ("Task failed: ", "Failed to connect to the host via ssh: "):
        msg = msg.replace(noise, "")
    msg = re.sub(r"Warning: Permanently added .*? to the list of known hosts\.\s*", "", msg).rstrip(". ")
    if "Permission denied" in msg:
        return "login refused", f"{msg[:240]}; check the user and that its authorized_keys has your key"
    return "unreachable", f"{msg[:240]}; check the address, port and that sshd runs"


def _probe_status(res: dict, python: str) -> tuple[str, str] | None:
    if res["event"] == "runner_on_ok":
        return None
    if res["event"] == "runner_on_unreachable":
        return _connection(res)
    if res.get("rc") == EXIT_PROFILE:
        return "profile mismatch", said(res) + "; nothing was copied"
    if res.get("rc") == 127 or "not found" in said(res):
        return "no python", f"{python!r} did not run on the device ({said(res)}); set ansible_python_interpreter"
    return "probe failed", said(res)


def _selftest_status(res: dict | None, result: dict | None, timeout: Any) -> tuple[str, str | None]:
    if res is None:
        return "not run", "the self-test did not start (see ansible's output in the JSON)"
    if res["event"] == "runner_on_unreachable":
        return _connection(res)
    if result is None:
        if "time frame" in str(res.get("msg", "")) or "timed out" in str(res.get("msg", "")).lower():
            return (
                "timed out",
                f"the self-test did not finish within {timeout} s (resnet_deploy_timeout / --host-timeout)",
            )
        return "self-test failed", said(res)
    if result.get("ok"):
        return "ok", None
    why = result.get("error") or "; ".join(breach_text(b) for b in result.get("breaches", [])) or "tolerance breached"
    return "FAILED", why


def _metrics(row: dict, result: dict) -> None:
    m, lat, rt = result.get("metrics") or {}, result.get("latency") or {}, result.get("runtime") or {}
    row.update(
        accuracy=m.get("accuracy"),
        agreement=m.get("top1_agreement"),
        cosine=m.get("cosine"),
        p50=lat.get("p50"),
        runtime=" ".join(str(v) for v in (rt.get("runtime"), rt.get("version")) if v) or None,
        signature=(result.get("signature") or {}).get("checked"),
    )


def host_row(h: FleetHost, results: dict[str, dict], steps: list[dict], ansible_stdout: str, timeout: float) -> dict:
    """The host's row: where it is, what it is, what its self-test measured, its status, and
    its steps (start and end, seconds from the start of the run)."""
    row: dict[str, Any] = {
        "host": h.name,
        "address": h.address,
        "port": h.port,
        "user": h.user,
        "groups": list(h.groups),
        "python": h.python,
        "arch": None,
        "runtime": None,
        "accuracy": None,
        "agreement": None,
        "cosine": None,
        "p50": None,
        "signature": None,
        "status": None,
        "ok": False,
        "error": None,
        "seconds": None,
        "steps": steps,
        "device": None,
        "selftest": None,
    }
    ends = [s["end"] for s in steps if s["end"] is not None]
    if steps and ends:
        row["seconds"] = round(max(ends) - min(s["start"] for s in steps), 2)
    probe = results.get("probe")
    if probe is None:
        tail = [ln for ln in ansible_stdout.strip().splitlines() if ln.strip()][-1:] or ["no output"]
        row.update(status="no result", error=f"ansible reported nothing for this host: {tail[0][:240]}")
        return row
    facts = json_line(probe)
    row["device"] = facts
    row["arch"] = (facts or {}).get("arch")
    bad: tuple[str, str | None] | None = _probe_status(probe, h.python or "python3")
    failed = next(
        (t for t in PUBLISH_TASKS if results.get(t, {}).get("event") in ("runner_on_failed", "runner_on_unreachable")),
        None,
    )
    if bad is None and failed:
        bad = ("copy failed", f"{failed}: {said(results[failed])}; the partial copy was removed")
    if bad is None:
        result = json_line(results["selftest"]) if "selftest" in results else None
        row["selftest"] = result
        if result:
            _metrics(row, result)
        bad = _selftest_status(results.get("selftest"), result, f"{timeout:g}")
    row["status"], row["error"] = cast(tuple, bad)
    row["ok"] = row["status"] == "ok"
    return row


@dataclass(frozen=True)
class FleetResult(Record):
    """A fleet deploy: the bundle, where it went, the engine that ran it, one row per host
    (host_row) and the wall time; to_dict() adds the counts and the verdict."""

    bundle: str
    inventory: str
    to: str
    engine: dict[str, Any]
    hosts: list[dict[str, Any]]
    seconds: float

    @property
    def passed(self) -> int:
        return sum(bool(r["ok"]) for r in self.hosts)

    @property
    def failed(self) -> int:
        return len(self.hosts) - self.passed

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "passed": self.passed, "failed": self.failed, "ok": self.ok}


def _cell(v: Any, fmt: str) -> str:
    if v is None:
        return "-"
    return f"{v * 100:.2f}%" if fmt == "%" else format(v, fmt)


def fleet_markdown(result: dict) -> str:
    """The fleet table: one row per host, then one line per failure."""
    lines = [
        f"### {result['bundle']} on {len(result['hosts'])} hosts: {result['passed']} ok, {result['failed']} failed "
        f"({result['seconds']:.1f} s, {result['engine']['name']} {result['engine']['ansible-core']}, "
        f"{result['engine']['forks']} at a time)",
        "",
        "| host | arch | runtime | accuracy | agreement | cosine | p50 ms | status |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["hosts"]:
        lines.append(
            f"| {r['host']} | {r['arch'] or '-'} | {r['runtime'] or '-'} | {_cell(r['accuracy'], '%')} | "
            f"{_cell(r['agreement'], '%')} | {_cell(r['cosine'], '.6f')} | {_cell(r['p50'], '.3f')} | "
            f"{r['status']} |"
        )
    errors = [f"{r['host']}: {r['status']}: {r['error']}" for r in result["hosts"] if r["error"]]
    return "\n".join(lines + ([""] + errors if errors else [])) + "\n"
