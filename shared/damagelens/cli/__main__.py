from damagelens.cli import main

main()
