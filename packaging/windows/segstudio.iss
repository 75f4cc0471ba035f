; Inno Setup 6 script for the Windows installer. Built by .github/workflows/release.yml after
; `pyinstaller packaging\windows\segstudio.spec`:
;   iscc /DAppVersion=0.1.0 /DVariant=cu130 /DSourceDir=dist\segstudio /DOutputDir=dist packaging\windows\segstudio.iss
; The one-folder app is the same layout as on Linux (segstudio.exe + _internal\); nothing is compiled here.

#ifndef AppVersion
  #error Pass /DAppVersion=X.Y.Z (segstudio.__version__)
#endif
#ifndef Variant
  #define Variant "cpu"
#endif
#ifndef SourceDir
  #define SourceDir "..\..\dist\segstudio"
#endif
#ifndef OutputDir
  #define OutputDir "..\..\dist"
#endif
#define RepoDir "..\.."

[Setup]
; AppId identifies the product across versions (upgrades replace, uninstall finds it): never change it
AppId={{6F2A4C1E-8B3D-4E5F-9A7C-2D1B0E3F4A5C}
AppName=segstudio
AppVersion={#AppVersion}
AppVerName=segstudio {#AppVersion} ({#Variant})
AppPublisher=segstudio developers
AppPublisherURL=https://github.com/segstudio/segstudio
DefaultDirName={autopf}\segstudio
DefaultGroupName=segstudio
; per-user install without admin rights is offered, machine-wide when elevated
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
LicenseFile={#RepoDir}\LICENSE
SetupIconFile={#RepoDir}\build\package\generated\icons\segstudio.ico
UninstallDisplayIcon={app}\segstudio.exe
OutputDir={#OutputDir}
OutputBaseFilename=segstudio-{#AppVersion}-windows-x86_64-{#Variant}-setup
; the CUDA variant is ~4 GB: a single Setup.exe cannot exceed 2 GB, so it spans setup-N.bin slices
DiskSpanning=yes
DiskSliceSize=max
Compression=lzma2/normal
SolidCompression=no
LZMAUseSeparateProcess=yes
ChangesAssociations=yes
WizardStyle=modern

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: "assocworkspace"; Description: "Open segstudio workspaces (*.segstudio) with segstudio"; GroupDescription: "File associations:"

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs
Source: "{#RepoDir}\build\package\generated\THIRD-PARTY-NOTICES.txt"; DestDir: "{app}"; Flags: ignoreversion

[Icons]
Name: "{group}\segstudio"; Filename: "{app}\segstudio.exe"
Name: "{group}\segstudio self-test"; Filename: "{cmd}"; Parameters: "/k ""{app}\segstudio.exe"" --selftest"
Name: "{group}\Third-party notices"; Filename: "{app}\THIRD-PARTY-NOTICES.txt"
Name: "{group}\{cm:UninstallProgram,segstudio}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\segstudio"; Filename: "{app}\segstudio.exe"; Tasks: desktopicon

[Registry]
; HKA = HKLM for an admin install, HKCU for a per-user one
Root: HKA; Subkey: "Software\Classes\.segstudio"; ValueType: string; ValueName: ""; ValueData: "segstudio.workspace"; Flags: uninsdeletevalue; Tasks: assocworkspace
Root: HKA; Subkey: "Software\Classes\segstudio.workspace"; ValueType: string; ValueName: ""; ValueData: "segstudio workspace"; Flags: uninsdeletekey; Tasks: assocworkspace
Root: HKA; Subkey: "Software\Classes\segstudio.workspace\DefaultIcon"; ValueType: string; ValueName: ""; ValueData: "{app}\segstudio.exe,0"; Tasks: assocworkspace
Root: HKA; Subkey: "Software\Classes\segstudio.workspace\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\segstudio.exe"" ""%1"""; Tasks: assocworkspace

[Run]
Filename: "{app}\segstudio.exe"; Description: "{cm:LaunchProgram,segstudio}"; Flags: nowait postinstall skipifsilent
