"""python -m earshot_train {descriptors,cache,train,export,golden,report,all} --data ../../../shared/data"""

from .cli import main

main()
