"""An EventBridge rule on the default bus that sends paw's events to an SQS queue, on the emulator:
where the tests read what paw put.

Usage: event_queue.py ENDPOINT create NAME    (prints the queue's URL)
       event_queue.py ENDPOINT receive URL    (prints every event the queue holds, as a JSON list)
"""

import json
import sys

import boto3

endpoint, command, argument = sys.argv[1:4]
base = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
sqs = boto3.client("sqs", **base)

if command == "create":
    events = boto3.client("events", **base)
    url = sqs.create_queue(QueueName=argument)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=argument, EventPattern=json.dumps({"source": ["paw"]}), State="ENABLED")
    events.put_targets(Rule=argument, Targets=[{"Id": "queue", "Arn": arn}])
    print(url)
elif command == "receive":
    received = []
    while True:
        messages = sqs.receive_message(QueueUrl=argument, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        if not messages:
            break
        for message in messages:
            received.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=argument, ReceiptHandle=message["ReceiptHandle"])
    print(json.dumps(received))
else:
    sys.exit(f"unknown command {command}")
