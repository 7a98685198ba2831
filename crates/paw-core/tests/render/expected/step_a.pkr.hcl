
source_ami = "ami-0123456789abcdef0" # base/images/
ami_name   = "base/images/wf-1/step_a"
region     = "eu-west-3"

tags = {
  "z:last" = "1"
  "a:first" = "it's"
  "m:middle" = "say \"hi\""
}

# Python reprs of every kind of value
# metadata: {'b': 1, 'a': [True, None]}
# nested: {'list': [1, 'two', None, True, False], 'map': {'k': [{'x': 'y'}]}}
# tags: {'z:last': '1', 'a:first': "it's", 'm:middle': 'say "hi"'}
# none: None / None
# numbers: 3 0.5 1e+16 2.0
# arithmetic: 2.5 2.0 3 1 1024 6
# strings: a1None BASE/IMAGES/WF-1/STEP_A STEP_A ['x', 'y']
# filters: curl, git 2 curl ['z:last', 'a:first', 'm:middle']
# default: fallback False
# keys: ['workflow_id', 'zeta_first', 'root_base_ami_id', 'root_base_ami_name', 'aws_tags', 'numbers', 'nested', 'vpc_name', 'is_default_vpc', 'subnet_name', 'security_group_name', 'ec2_iam_role_name', 'profile_name', 'region_name', 'aws_access_key_id', 'aws_secret_access_key', 'aws_session_token', 'aws_region']

provisioner_1 = "wf-1/curl" # first
provisioner_2 = "wf-1/git" # last
first_step = true
trailing newline is dropped, as Jinja2 does by default