from batchgate.cli import main

raise SystemExit(main())
