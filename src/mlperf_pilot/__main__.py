"""`python -m mlperf_pilot` is `mlperf-pilot`."""

from mlperf_pilot.cli.main import main

raise SystemExit(main())
