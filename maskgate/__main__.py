from maskgate.cli import main

raise SystemExit(main())
