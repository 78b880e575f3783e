from ingestd.cli.commands import main

raise SystemExit(main())
