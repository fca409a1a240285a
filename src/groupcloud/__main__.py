from groupcloud.cli.main import main

main()
