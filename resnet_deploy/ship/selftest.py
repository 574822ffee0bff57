#!/usr/bin/env python3
"""resnet-deploy bundle self-test: needs only Python 3.8+, numpy and the target's runtime.

    python selftest.py [--bundle DIR] [--threads N] [--warmup-s S] [--seconds S]

Verifies the sha256 of every file, loads the model with the runtime (LiteRT / tflite-runtime /
tf.lite, onnxruntime or openvino), runs the reference inputs, checks them against the Keras
outputs with the bundle's tolerances, times the model with the same latency protocol as the
host, and prints one JSON object. Exit code 0 only if everything holds (4: the runtime cannot
run the model as promised, 5: a tolerance breach, 6: an integrity failure, 8: this device is
not what the bundle was built for, its architecture or CPU features; --allow-profile-mismatch
runs anyway and says so in the JSON).

The code it runs is the bundle's `rd_portable/` folder, a verbatim copy of
resnet_deploy/portable: the device judges with the code the host judged with.
"""
import argparse
import json
import os
import platform
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def _core():
    """The bundle's own copy of the portable core, or the installed one on the host."""
    if os.path.isfile(os.path.join(HERE, "rd_portable", "__init__.py")):
        sys.dont_write_bytecode = True  # leave the verified bundle folder exactly as it was shipped
        if HERE not in sys.path:
            sys.path.insert(0, HERE)
        import rd_portable as core
    else:
        from resnet_deploy import portable as core
    return core


core = _core()


def _check(core, bundle, manifest, threads, protocol):
    x, ref, labels = core.load_reference(os.path.join(bundle, core.REFERENCE))
    try:
        model = core.load_model(bundle, manifest, threads)
        out = core.predict(model, x)
    except (core.BundleError, core.RuntimeMismatch):
        raise
    except Exception as e:  # the runtime's own error types
        first = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        raise core.RuntimeMismatch("the runtime could not run the model: %s: %s" % (type(e).__name__, first))
    metrics = core.compare(ref, out, labels)
    metrics["acc_drop"] = core.acc_drop(metrics)
    breaches = core.check(metrics, manifest["tolerance"])
    latency = core.time_calls(model.run, model.prepare(x[:1]), 1, protocol)
    return {"runtime": model.info, "samples": int(len(x)), "metrics": metrics, "breaches": breaches,
            "tolerance": manifest["tolerance"], "latency": latency, "host": manifest.get("host"), "ok": not breaches}


def selftest(bundle, threads=None, protocol=None, allow_profile_mismatch=False, verify_key=None):
    """Run every check; return (result dict, exit code)."""
    import numpy as np

    result = {"ok": False, "bundle": os.path.basename(os.path.abspath(bundle)), "python": platform.python_version(),
              "numpy": np.__version__, "machine": platform.machine()}
    try:
        manifest = core.check_manifest(core.verify_bundle(bundle))
        result.update(integrity="ok", target=manifest["target"], precision=manifest["precision"],
                      model=manifest["model"]["name"])
        result["signature"] = core.signature_status(bundle, verify_key)
        result["profile"] = core.check_profile(manifest.get("device_profile"), allow_profile_mismatch)
        threads = threads or (manifest.get("host") or {}).get("threads") or 2
        result.update(_check(core, bundle, manifest, threads, protocol))
        return result, (core.EXIT_OK if result["ok"] else core.EXIT_PARITY)
    except (core.BundleError, core.RuntimeMismatch, core.ProfileMismatch) as e:
        result["error"] = str(e)
        if getattr(e, "result", None):
            result["profile"] = e.result
        return result, e.exit_code


def _checked(convert, problem):
    """An argparse type: the value converted, then refused with the host's own rule's words."""
    def parse(text):
        try:
            v = convert(text)
        except ValueError:
            v = text
        why = problem(v, "the value")
        if why:
            raise argparse.ArgumentTypeError(why)
        return v
    return parse


def main(argv=None):
    p = argparse.ArgumentParser(description="Self-test a resnet-deploy bundle on this device.")
    p.add_argument("--bundle", default=HERE, help="bundle directory (default: this script's folder)")
    p.add_argument("--threads", type=_checked(int, core.thread_problem), default=None,
                   help="runtime threads (default: the host's)")
    p.add_argument("--warmup-s", type=_checked(float, core.seconds_problem), default=core.DEFAULT_PROTOCOL["warmup_s"])
    p.add_argument("--seconds", type=_checked(float, core.seconds_problem), default=core.DEFAULT_PROTOCOL["seconds"])
    p.add_argument("--allow-profile-mismatch", action="store_true",
                   help="run even if this device is not what the bundle was built for (reported in the JSON)")
    p.add_argument("--verify-key", default=None,
                   help="the signer's EC public key on this device: check model.sig (needs model-signing installed)")
    args = p.parse_args(argv)
    result, code = selftest(args.bundle, args.threads, {"warmup_s": args.warmup_s, "seconds": args.seconds},
                            args.allow_profile_mismatch, args.verify_key)
    print(json.dumps(core.no_nan(result), default=float))
    if code != core.EXIT_OK:
        why = result.get("error") or "; ".join(core.breach_text(b) for b in result.get("breaches", []))
        print("error: self-test failed: %s" % why, file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
