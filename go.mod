module replaydesk

go 1.26.8
