from modelladder.cli import main

raise SystemExit(main())
