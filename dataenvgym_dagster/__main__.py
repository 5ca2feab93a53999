from dataenvgym_dagster.cli import main

raise SystemExit(main())
