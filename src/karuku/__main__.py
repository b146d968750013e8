from karuku.cli.app import main

main()
