"""The Ansible run of a fleet deploy, in its own Python process (fleet.py starts it).

ansible-runner changes the process it runs in (it installs its own SIGINT/SIGTERM handlers and
drives ansible-playbook through a pty), and ansible-playbook inherits that process's whole
environment. Run from a long-lived process (a notebook, a test session with TensorFlow loaded)
that inherited state made ansible-playbook die before printing anything. So the run gets a
fresh interpreter with a minimal environment, and streams Ansible's events back as JSON lines:

    python -m resnet_deploy.ship.fleet_engine JOB.json   (JOB: ansible_runner.run's arguments)

stdout: one JSON object per event ({"event", "event_data": {"host", "task", "res"}, "created"}),
then {"final": {"status", "rc", "output"}}.
"""

from __future__ import annotations

import json
import sys
from typing import Any

KEEP = ("task", "host", "res")


def _event(emit: Any) -> Any:
    def handle(event: dict) -> bool:
        data = event.get("event_data") or {}
        if data.get("host") and data.get("task"):
            emit(
                {
                    "event": event.get("event"),
                    "created": event.get("created"),
                    "event_data": {k: data.get(k) for k in KEEP},
                }
            )
        return True

    return handle


def main(argv: list[str] | None = None) -> int:
    import ansible_runner

    job = json.loads(open((argv or sys.argv[1:])[0]).read())

    def emit(obj: dict) -> None:
        sys.stdout.write(json.dumps(obj, default=str) + "\n")
        sys.stdout.flush()

    run = ansible_runner.run(**job, quiet=True, event_handler=_event(emit), settings={"suppress_ansible_output": True})
    output = run.stdout.read() if run.stdout else ""
    emit({"final": {"status": run.status, "rc": run.rc, "output": output[-20000:]}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
