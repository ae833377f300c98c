from campaigns.cli import main

main()
