"""python -m bench [run options] | compare A.json B.json | readme RESULTS.json [--readme README.md]"""

import argparse
import os
import sys

import bench  # noqa: F401  (CUPY_TF32=0 before cupy is imported)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "compare":
        p = argparse.ArgumentParser(prog="python -m bench compare", description="two runs side by side")
        p.add_argument("a")
        p.add_argument("b")
        args = p.parse_args(argv[1:])
        from bench import report
        print(report.compare(report.load(args.a), report.load(args.b), args.a, args.b))
        return 0
    if argv and argv[0] == "readme":
        p = argparse.ArgumentParser(prog="python -m bench readme",
                                    description="regenerate README's Performance section from a results file")
        p.add_argument("results")
        p.add_argument("--readme", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                        "README.md"))
        args = p.parse_args(argv[1:])
        from bench import report, schema
        doc = schema.validate(report.load(args.results))
        source = os.path.relpath(os.path.abspath(args.results), os.path.dirname(os.path.abspath(args.readme)))
        report.update_readme(args.readme, doc, source)
        print(f"updated the Performance section of {args.readme} from {args.results}")
        return 0
    if argv and argv[0] == "run":
        argv = argv[1:]
    from bench import run
    run.main(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
