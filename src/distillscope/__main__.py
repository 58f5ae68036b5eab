from distillscope.cli import entry

entry()
