from kerasparse.cli import main

main()
