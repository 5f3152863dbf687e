from ganzoo.studio.app import main

main()
