from bench.matching_replay.cli import main

raise SystemExit(main())
